import { isDeepStrictEqual } from 'node:util'
import { jsonToLex } from '@atproto/lexicon'
import { ObjectId, type AnyBulkWriteOperation, type Db, type Document, type Filter } from 'mongodb'
import PQueue from 'p-queue'
import { DocError, NotReady, collections, readDoc, type Collection, type Kind, type SourceItem, type WriterContext } from '../collections/index.js'
import { lexicons } from '../lexicon/lexicons.js'
import type { Logger } from '../log.js'
import { loadAccounts, type Account } from './accounts.js'
import { MAX_WRITES_PER_CALL, RepoClient, type RepoRecord, type RepoWrite } from './repo.js'
import { deterministicRkey } from './rkey.js'

export type Action = 'create' | 'update' | 'delete' | 'unchanged' | 'skipped' | 'invalid' | 'failed'
export const ACTIONS: Action[] = ['create', 'update', 'delete', 'unchanged', 'skipped', 'invalid', 'failed']

/** What happened to one MongoDB document (or one duplicate record on the PDS). */
export interface Outcome {
  kind: Kind
  /** MongoDB `_id` as hex (or as found, for a document whose `_id` is not an ObjectId). */
  id: string
  /** Handle or DID of the repo, or the owner's Auth0 subject when it has no PDS account. */
  repo: string
  action: Action
  reason?: string
  uri?: string
}

export interface BackfillOptions {
  db: Db
  pdsUrl: string
  ctx: WriterContext
  log: Logger
  /** Repos written at once. */
  concurrency: number
  /** `users._id` of AC's guest account, which owns anonymous items (AC: `art-guest`). */
  guestUser: string
  /** Plan only: nothing is uploaded, written to the PDS or written to MongoDB. */
  dryRun?: boolean
  only?: Kind[]
  /** Only these owners (Auth0 subjects). */
  users?: string[]
  /** Only anonymous items (the guest repo). */
  anonymous?: boolean
  /** Called after each repo with the outcomes so far, for progress displays. */
  onProgress?(done: number, total: number): void
}

export interface BackfillReport {
  dryRun: boolean
  repos: number
  counts: Record<Kind, Record<Action, number>>
  /** Every outcome other than `unchanged`, `create`, `update` and `delete`, with its reason. */
  problems: Outcome[]
  /** Every change made (or planned, in a dry run). */
  changes: Outcome[]
  durationMs: number
}

interface Owned {
  col: Collection
  item: SourceItem
}

interface RepoJob {
  account: Account
  items: Owned[]
}

/**
 * Mirrors AC's MongoDB items into their owners' repos (anonymous items into the guest repo).
 * Per repo: list what the PDS holds, adopt AC's earlier records (by back-reference or `ref`),
 * create missing records at their deterministic rkey, update drifted ones in place, delete
 * records of nuked/deleted items and duplicates by `ref`, then write back-references to
 * MongoDB with `$set` on sub-fields. Running it twice changes nothing the second time.
 * A bad document or a failing item is reported in the result and never stops the run.
 */
export async function backfill(opts: BackfillOptions): Promise<BackfillReport> {
  const started = Date.now()
  const report: BackfillReport = { dryRun: !!opts.dryRun, repos: 0, counts: emptyCounts(), problems: [], changes: [], durationMs: 0 }
  const record = (o: Outcome) => {
    report.counts[o.kind][o.action]++
    if (o.action === 'create' || o.action === 'update' || o.action === 'delete') report.changes.push(o)
    else if (o.action !== 'unchanged') report.problems.push(o)
  }

  const accounts = await loadAccounts(opts.db, opts.log)
  const jobs = await collectJobs(opts, accounts, record)
  report.repos = jobs.length
  opts.log.info({ repos: jobs.length, items: jobs.reduce((n, j) => n + j.items.length, 0), dryRun: !!opts.dryRun }, 'backfill planned')

  const media = new PQueue({ concurrency: 4 })
  const repos = new PQueue({ concurrency: opts.concurrency })
  let done = 0
  for (const job of jobs) {
    void repos.add(async () => {
      try {
        await syncRepo(job, opts, media, record)
      } catch (err) {
        const reason = (err as Error).message
        opts.log.error({ repo: job.account.did, err: reason }, 'repo failed')
        for (const { col, item } of job.items) record({ kind: col.kind, id: item.id, repo: repoName(job.account), action: 'failed', reason })
      }
      opts.onProgress?.(++done, jobs.length)
    })
  }
  await repos.onIdle()
  report.durationMs = Date.now() - started
  return report
}

function emptyCounts(): Record<Kind, Record<Action, number>> {
  return Object.fromEntries(collections.map((c) => [c.kind, Object.fromEntries(ACTIONS.map((a) => [a, 0]))])) as Record<Kind, Record<Action, number>>
}

function repoName(account: Account): string {
  return account.handle ?? account.did
}

/** Reads every selected document, checks it, and groups it under its repo. */
async function collectJobs(opts: BackfillOptions, accounts: Map<string, Account>, record: (o: Outcome) => void): Promise<RepoJob[]> {
  const jobs = new Map<string, RepoJob>()
  const guest = accounts.get(opts.guestUser)
  const selected = collections.filter((c) => !opts.only || opts.only.includes(c.kind))
  for (const col of selected) {
    const filter: Filter<Document> = opts.anonymous ? { user: { $exists: false } } : opts.users ? { user: { $in: opts.users } } : {}
    if (opts.anonymous && !col.anonymous) continue
    for await (const doc of opts.db.collection(col.mongo).find(filter).batchSize(1000)) {
      let item: SourceItem
      try {
        item = readDoc(col, doc)
      } catch (err) {
        if (!(err instanceof DocError)) throw err
        record({ kind: col.kind, id: String(doc._id), repo: String(doc.user ?? opts.guestUser), action: 'invalid', reason: err.message })
        continue
      }
      const owner = item.owner ?? opts.guestUser
      const account = item.owner ? accounts.get(item.owner) : guest
      if (!account) {
        if (item.live) record({ kind: col.kind, id: item.id, repo: owner, action: 'skipped', reason: `owner ${owner} has no PDS account` })
        continue
      }
      const job = jobs.get(account.did) ?? { account, items: [] }
      job.items.push({ col, item })
      jobs.set(account.did, job)
    }
  }
  return [...jobs.values()]
}

/** One planned change to a repo, with what it needs from MongoDB afterwards. */
interface Planned {
  col: Collection
  item: SourceItem
  rkey: string
  existing?: RepoRecord
  /** Record without blobs (creates and updates). */
  fields?: Record<string, unknown>
  /** `failed` once building or writing it failed (already reported). */
  action: 'create' | 'update' | 'delete' | 'unchanged' | 'failed'
}

async function syncRepo(job: RepoJob, opts: BackfillOptions, media: PQueue, record: (o: Outcome) => void): Promise<void> {
  const { account } = job
  const repo = repoName(account)
  const client = await RepoClient.login(opts.pdsUrl, account, opts.log)
  const kinds = new Set(job.items.map((o) => o.col))
  const existing = new Map<Collection, Map<string, RepoRecord>>()
  for (const col of kinds) existing.set(col, new Map((await client.listRecords(col.nsid)).map((r) => [r.rkey, r])))

  const planned: Planned[] = []
  for (const col of kinds) {
    const onPds = existing.get(col)!
    const byRef = indexByRef(col, onPds)
    for (const { item } of job.items.filter((o) => o.col === col)) {
      const matches = byRef.get(item.id) ?? []
      const rkey = chooseRkey(item, onPds, matches)
      // Duplicates by `ref` (AC's crash fault): keep one, delete the rest.
      for (const dup of matches.filter((r) => r !== rkey)) {
        planned.push({ col, item, rkey: dup, existing: onPds.get(dup), action: 'delete' })
      }
      const current = onPds.get(rkey)
      if (!item.live) {
        if (current) planned.push({ col, item, rkey, existing: current, action: 'delete' })
        continue
      }
      let fields: Record<string, unknown>
      try {
        fields = await col.toRecord(item, opts.ctx)
      } catch (err) {
        const action = err instanceof NotReady ? 'skipped' : 'failed'
        record({ kind: col.kind, id: item.id, repo, action, reason: (err as Error).message })
        continue
      }
      const action = !current ? 'create' : sameContent(col, current.value, fields) ? 'unchanged' : 'update'
      planned.push({ col, item, rkey, existing: current, fields, action })
    }
  }

  const writes: Array<{ plan: Planned; write: RepoWrite }> = []
  await Promise.all(
    planned.map((plan) =>
      media.add(async () => {
        if (plan.action === 'unchanged') return
        if (opts.dryRun) {
          record({ kind: plan.col.kind, id: plan.item.id, repo, action: plan.action as Action, uri: uriOf(account.did, plan.col, plan.rkey) })
          return
        }
        if (plan.action === 'delete') {
          writes.push({ plan, write: { action: 'delete', collection: plan.col.nsid, rkey: plan.rkey } })
          return
        }
        try {
          const value = await buildRecord(plan, opts.ctx, client, (reason) => record({ kind: plan.col.kind, id: plan.item.id, repo, action: 'failed', reason }))
          if (plan.existing && isDeepStrictEqual(plan.existing.value, value)) {
            plan.action = 'unchanged'
            return
          }
          writes.push({ plan, write: { action: plan.action as 'create' | 'update', collection: plan.col.nsid, rkey: plan.rkey, value } })
        } catch (err) {
          plan.action = 'failed'
          record({ kind: plan.col.kind, id: plan.item.id, repo, action: 'failed', reason: (err as Error).message })
        }
      }),
    ),
  )
  if (opts.dryRun) {
    for (const p of planned) if (p.action === 'unchanged') record({ kind: p.col.kind, id: p.item.id, repo, action: 'unchanged' })
    return
  }

  const written = await applyInBatches(client, writes, repo, record)
  for (const p of planned) {
    if (p.action === 'unchanged' && p.existing) written.set(p, { uri: p.existing.uri, cid: p.existing.cid })
    if (p.action === 'unchanged') record({ kind: p.col.kind, id: p.item.id, repo, action: 'unchanged', uri: p.existing?.uri })
  }
  await writeBackrefs(opts.db, written, opts.log)
}

/** Records on the PDS by the MongoDB id they mirror (`ref`, or legacy `mongoId`), oldest rkey first. */
function indexByRef(col: Collection, records: Map<string, RepoRecord>): Map<string, string[]> {
  const byRef = new Map<string, string[]>()
  for (const r of records.values()) {
    const ref = col.normalize(r.value).ref
    if (typeof ref !== 'string') continue
    byRef.set(ref, [...(byRef.get(ref) ?? []), r.rkey].sort())
  }
  return byRef
}

/**
 * Where an item's record lives: its back-reference when that record exists, else the record
 * AC made for it (found by `ref`), else the back-reference's key, else the deterministic key.
 */
function chooseRkey(item: SourceItem, onPds: Map<string, RepoRecord>, matches: string[]): string {
  if (item.backref && onPds.has(item.backref.rkey)) return item.backref.rkey
  if (matches.length) return matches[0]
  return item.backref?.rkey ?? deterministicRkey(item.id, item.when)
}

/** True when the PDS record holds exactly `fields` plus every blob the kind needs. */
function sameContent(col: Collection, value: Record<string, unknown>, fields: Record<string, unknown>): boolean {
  const blobFields = new Set(col.blobs.map((b) => b.field))
  for (const [k, v] of Object.entries(fields)) if (!isDeepStrictEqual(value[k], v)) return false
  for (const k of Object.keys(value)) if (!(k in fields) && !blobFields.has(k)) return false
  return col.blobs.every((b) => value[b.field] !== undefined)
}

/**
 * The full record: fields plus uploaded blobs, validated against the kind's lexicon.
 * An optional blob that cannot be made is reported through `warn` and left out.
 * @throws when a required blob cannot be made or the record fails lexicon validation.
 */
async function buildRecord(plan: Planned, ctx: WriterContext, client: RepoClient, warn: (reason: string) => void): Promise<Record<string, unknown>> {
  const value: Record<string, unknown> = { ...plan.fields }
  for (const blob of plan.col.blobs) {
    let input
    try {
      input = await blob.make(plan.item, ctx)
    } catch (err) {
      if (blob.required) throw new Error(`${blob.field}: ${(err as Error).message}`)
      warn(`${blob.field} left out: ${(err as Error).message}`)
      continue
    }
    if (input) value[blob.field] = await client.uploadBlob(input)
  }
  const valid = lexicons.validate(plan.col.nsid, jsonToLex(value))
  if (!valid.success) throw new Error(`record fails ${plan.col.nsid}: ${valid.error.message}`)
  return value
}

/** Applies writes in batches; a failing batch is retried write by write so one bad record loses nothing else. */
async function applyInBatches(
  client: RepoClient,
  writes: Array<{ plan: Planned; write: RepoWrite }>,
  repo: string,
  record: (o: Outcome) => void,
): Promise<Map<Planned, { uri: string; cid?: string }>> {
  const written = new Map<Planned, { uri: string; cid?: string }>()
  const apply = async (batch: typeof writes) => {
    const results = await client.applyWrites(batch.map((w) => w.write))
    batch.forEach(({ plan }, i) => {
      written.set(plan, results[i])
      record({ kind: plan.col.kind, id: plan.item.id, repo, action: plan.action as Action, uri: results[i].uri })
    })
  }
  for (let i = 0; i < writes.length; i += MAX_WRITES_PER_CALL) {
    const batch = writes.slice(i, i + MAX_WRITES_PER_CALL)
    try {
      await apply(batch)
    } catch (err) {
      if (batch.length === 1) {
        const { plan } = batch[0]
        record({ kind: plan.col.kind, id: plan.item.id, repo, action: 'failed', reason: `PDS refused ${plan.action}: ${(err as Error).message}` })
        continue
      }
      for (const one of batch) {
        try {
          await apply([one])
        } catch (e) {
          record({ kind: one.plan.col.kind, id: one.plan.item.id, repo, action: 'failed', reason: `PDS refused ${one.plan.action}: ${(e as Error).message}` })
        }
      }
    }
  }
  return written
}

/**
 * Writes back-references with `$set` on sub-fields so AC's other fields survive:
 * `atproto.{rkey,uri,cid}` for every kind, and `at.{rkey,uri,cid}` for tapes (AC's tape shape).
 * A deleted record keeps only `atproto.rkey`, so an un-nuked item returns to the same key.
 */
async function writeBackrefs(db: Db, written: Map<Planned, { uri: string; cid?: string }>, log: Logger): Promise<void> {
  const ops = new Map<string, AnyBulkWriteOperation[]>()
  for (const [plan, result] of written) {
    const { col, item, rkey } = plan
    if (plan.action === 'delete') {
      if (rkey !== item.backref?.rkey || (!item.backref.uri && !item.backref.cid)) continue
      push(ops, col.mongo, { updateOne: { filter: { _id: objectIdOf(item) }, update: { $unset: { 'atproto.uri': '', 'atproto.cid': '', 'at.uri': '', 'at.cid': '' } } } })
      continue
    }
    const want = { rkey, uri: result.uri, cid: result.cid }
    const have = item.backref
    if (have && have.rkey === want.rkey && have.uri === want.uri && have.cid === want.cid) continue
    const set: Record<string, string | undefined> = { 'atproto.rkey': want.rkey, 'atproto.uri': want.uri, 'atproto.cid': want.cid }
    if (col.kind === 'tape') Object.assign(set, { 'at.rkey': want.rkey, 'at.uri': want.uri, 'at.cid': want.cid })
    push(ops, col.mongo, { updateOne: { filter: { _id: objectIdOf(item) }, update: { $set: set } } })
  }
  for (const [collection, batch] of ops) {
    await db.collection(collection).bulkWrite(batch, { ordered: false })
    log.debug({ collection, count: batch.length }, 'back-references written')
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V) {
  map.set(key, [...(map.get(key) ?? []), value])
}

function objectIdOf(item: SourceItem): ObjectId {
  return new ObjectId(item.id)
}

function uriOf(did: string, col: Collection, rkey: string): string {
  return `at://${did}/${col.nsid}/${rkey}`
}

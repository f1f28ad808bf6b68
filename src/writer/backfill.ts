import { isDeepStrictEqual } from 'node:util'
import { jsonToLex } from '@atproto/lexicon'
import { ObjectId, type AnyBulkWriteOperation, type Db, type Document, type Filter } from 'mongodb'
import PQueue from 'p-queue'
import { DocError, collections, readDoc, type Collection, type Kind, type SourceItem, type WriterContext } from '../collections/index.js'
import { lexicons } from '../lexicon/lexicons.js'
import type { Logger } from '../log.js'
import { loadAccounts, type Account } from './accounts.js'
import type { Ledger } from './ledger.js'
import { backrefUpdate, idOf, planRepo, type Planned } from './plan.js'
import { MAX_WRITES_PER_CALL, RepoClient, type RepoRecord, type RepoWrite, type WriteResult } from './repo.js'

export type Action = 'create' | 'update' | 'delete' | 'unchanged' | 'skipped' | 'invalid' | 'failed'
export const ACTIONS: Action[] = ['create', 'update', 'delete', 'unchanged', 'skipped', 'invalid', 'failed']

/** What happened to one MongoDB document (or one record on the PDS). */
export interface Outcome {
  kind: Kind
  /** MongoDB `_id` as hex (as found for a malformed document; the record's `ref` for an orphan). */
  id: string
  /** Handle or DID of the repo, or the owner's Auth0 subject when it has no PDS account. */
  repo: string
  action: Action
  reason?: string
  uri?: string
}

/** Which MongoDB items to consider. */
export interface Selection {
  only?: Kind[]
  /** Only these owners (Auth0 subjects). */
  users?: string[]
  /** Only anonymous items (the guest repo). */
  anonymous?: boolean
  /** Only items whose `when` is at or after this date. */
  since?: Date
  /** At most this many items, oldest first. */
  limit?: number
}

export interface WriterOptions extends Selection {
  db: Db
  pdsUrl: string
  ctx: WriterContext
  log: Logger
  /** Repos handled at once. */
  concurrency: number
  /** `users._id` of AC's guest account, which owns anonymous items (AC: `art-guest`). */
  guestUser: string
  ledger?: Ledger
  /** Called after each repo, for progress displays. */
  onProgress?(done: number, total: number, itemsDone: number, itemsTotal: number): void
}

export interface BackfillOptions extends WriterOptions {
  /** Plan only: nothing is uploaded, written to the PDS or written to MongoDB. */
  dryRun?: boolean
  /** Record problems under this existing ledger run (live mode's reconcile) instead of a new one. */
  runId?: number
}

export interface BackfillReport {
  dryRun: boolean
  repos: number
  counts: Record<Kind, Record<Action, number>>
  /** Every outcome other than `unchanged`, `create`, `update` and `delete`, with its reason. */
  problems: Outcome[]
  /** Every change made (or planned, in a dry run). */
  changes: Outcome[]
  /** MongoDB documents whose back-references were written or cleared. */
  backrefsWritten: number
  durationMs: number
}

/** One repo's owner and items. */
export interface RepoJob {
  account: Account
  items: Array<{ col: Collection; item: SourceItem }>
}

/**
 * Makes every selected repo match MongoDB: creates missing records at their rkeys, updates
 * drifted ones in place, deletes records of nuked/deleted items, duplicates by `ref` and (for
 * unfiltered runs) orphans, then writes back-references. Blobs are uploaded before the writes;
 * writes go in `applyWrites` batches of up to 200 per repo, several repos at once. Running it
 * twice changes nothing the second time. A bad document or failing item is reported in the
 * result and never stops the run.
 */
export async function backfill(opts: BackfillOptions): Promise<BackfillReport> {
  const started = Date.now()
  const report: BackfillReport = { dryRun: !!opts.dryRun, repos: 0, counts: emptyCounts(), problems: [], changes: [], backrefsWritten: 0, durationMs: 0 }
  const ownRun = opts.runId === undefined
  const runId = opts.dryRun ? undefined : (opts.runId ?? opts.ledger?.startRun('backfill'))
  const record = (o: Outcome) => {
    report.counts[o.kind][o.action]++
    if (o.action === 'create' || o.action === 'update' || o.action === 'delete') report.changes.push(o)
    else if (o.action !== 'unchanged') {
      report.problems.push(o)
      if (runId !== undefined) opts.ledger!.problem(runId, o)
    }
  }
  report.repos = await forEachRepo(opts, record, async (job, client, records) => {
    const planned = await planRepo(job.items, records, opts.ctx, isComplete(opts))
    report.backrefsWritten += await applyPlan(job, client, planned, opts, record, !!opts.dryRun)
    if (runId !== undefined && ownRun) opts.ledger!.updateRun(runId, flatCounts(report.counts))
  })
  report.durationMs = Date.now() - started
  if (runId !== undefined && ownRun) opts.ledger!.updateRun(runId, flatCounts(report.counts), { finished: true })
  return report
}

/** Unfiltered runs see every item of an owner, so a record with no live item is an orphan. */
export function isComplete(sel: Selection): boolean {
  return !sel.since && !sel.limit
}

/**
 * Loads accounts and items, then runs `work` for each repo with a logged-in client and every
 * record of the selected kinds, `concurrency` repos at once. A repo that fails as a whole
 * (login refused, PDS down past the retries) marks its items failed; the others go on.
 */
export async function forEachRepo(
  opts: WriterOptions,
  record: (o: Outcome) => void,
  work: (job: RepoJob, client: RepoClient, records: Map<Collection, Map<string, RepoRecord>>) => Promise<void>,
): Promise<number> {
  const accounts = await loadAccounts(opts.db, opts.log)
  const jobs = await collectJobs(opts, accounts, record)
  const itemsTotal = jobs.reduce((n, j) => n + j.items.length, 0)
  opts.log.info({ repos: jobs.length, items: itemsTotal }, 'repos to compare')
  const queue = new PQueue({ concurrency: opts.concurrency })
  let done = 0
  let itemsDone = 0
  for (const job of jobs) {
    void queue.add(async () => {
      try {
        const client = await RepoClient.login(opts.pdsUrl, job.account, opts.log)
        const kinds = selectedKinds(opts, job.account.user === opts.guestUser)
        const present = await client.collections()
        const records = new Map<Collection, Map<string, RepoRecord>>()
        for (const col of kinds) records.set(col, new Map(present.has(col.nsid) ? (await client.listRecords(col.nsid)).map((r) => [r.rkey, r]) : []))
        await work(job, client, records)
      } catch (err) {
        const reason = (err as Error).message
        opts.log.error({ repo: job.account.did, err: reason }, 'repo failed')
        for (const { col, item } of job.items) record({ kind: col.kind, id: item.id, repo: repoName(job.account), action: 'failed', reason })
      }
      itemsDone += job.items.length
      opts.onProgress?.(++done, jobs.length, itemsDone, itemsTotal)
    })
  }
  await queue.onIdle()
  return jobs.length
}

function selectedKinds(sel: Selection, guest: boolean): Collection[] {
  return collections.filter((c) => (!sel.only || sel.only.includes(c.kind)) && (!guest || c.anonymous))
}

function emptyCounts(): Record<Kind, Record<Action, number>> {
  return Object.fromEntries(collections.map((c) => [c.kind, Object.fromEntries(ACTIONS.map((a) => [a, 0]))])) as Record<Kind, Record<Action, number>>
}

/** Counts summed over kinds, for the ledger. */
export function flatCounts(counts: Record<Kind, Record<Action, number>>): Record<string, number> {
  const flat: Record<string, number> = {}
  for (const byAction of Object.values(counts)) for (const [a, n] of Object.entries(byAction)) flat[a] = (flat[a] ?? 0) + n
  return flat
}

export function repoName(account: Account): string {
  return account.handle ?? account.did
}

/** Reads every selected document, checks it, and groups it under its repo. */
async function collectJobs(opts: WriterOptions, accounts: Map<string, Account>, record: (o: Outcome) => void): Promise<RepoJob[]> {
  const jobs = new Map<string, RepoJob>()
  const guest = accounts.get(opts.guestUser)
  const wanted: Array<{ col: Collection; item: SourceItem; account: Account }> = []
  for (const col of selectedKinds(opts, !!opts.anonymous)) {
    const filter: Filter<Document> = {
      ...(opts.anonymous ? { user: { $exists: false } } : opts.users ? { user: { $in: opts.users } } : {}),
      ...(opts.since ? { when: { $gte: opts.since } } : {}),
    }
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
      wanted.push({ col, item, account })
    }
  }
  if (opts.limit) wanted.sort((a, b) => a.item.when.getTime() - b.item.when.getTime()).splice(opts.limit)
  for (const { col, item, account } of wanted) {
    const job = jobs.get(account.did) ?? { account, items: [] }
    job.items.push({ col, item })
    jobs.set(account.did, job)
  }
  return [...jobs.values()]
}

/**
 * Carries out one repo's plan: builds records (uploading blobs), applies writes in batches,
 * writes back-references. In a dry run only reports. Returns the back-references written.
 */
export async function applyPlan(
  job: RepoJob,
  client: RepoClient,
  planned: Planned[],
  opts: WriterOptions,
  record: (o: Outcome) => void,
  dryRun: boolean,
  /** Write back-references even when the item's document says they are right (live mode: the change's snapshot may be stale). */
  forceBackrefs = false,
): Promise<number> {
  const repo = repoName(job.account)
  const outcome = (p: Planned, action: Action, extra: Partial<Outcome> = {}) =>
    record({ kind: p.col.kind, id: idOf(p), repo, action, ...extra })

  for (const p of planned) {
    if (p.finding === 'not-ready') outcome(p, 'skipped', { reason: p.detail })
    if (p.finding === 'unbuildable') outcome(p, 'failed', { reason: p.detail })
  }
  const changing = planned.filter((p) => p.action === 'create' || p.action === 'update' || p.action === 'delete')
  if (dryRun) {
    for (const p of changing) outcome(p, p.action as Action, { uri: `at://${job.account.did}/${p.col.nsid}/${p.rkey}`, reason: p.detail })
    for (const p of planned.filter((p) => p.action === 'unchanged')) outcome(p, 'unchanged')
    return 0
  }

  const writes: Array<{ plan: Planned; write: RepoWrite }> = []
  await Promise.all(
    changing.map(async (plan) => {
      if (plan.action === 'delete') return writes.push({ plan, write: { action: 'delete', collection: plan.col.nsid, rkey: plan.rkey } })
      try {
        const value = await buildRecord(plan, opts.ctx, client, (reason) => outcome(plan, 'failed', { reason }))
        if (plan.existing && isDeepStrictEqual(plan.existing.value, value)) {
          plan.action = 'unchanged'
          return
        }
        writes.push({ plan, write: { action: plan.action as 'create' | 'update', collection: plan.col.nsid, rkey: plan.rkey, value } })
      } catch (err) {
        plan.action = 'failed'
        outcome(plan, 'failed', { reason: (err as Error).message })
      }
    }),
  )
  const written = await applyInBatches(client, writes, (p, action, extra) => outcome(p, action, extra))
  for (const p of planned) {
    if (p.action !== 'unchanged') continue
    outcome(p, 'unchanged', { uri: p.existing?.uri })
    if (p.existing) written.set(p, { uri: p.existing.uri, cid: p.existing.cid })
  }
  rememberWrites(opts.ledger, job.account.did, planned, written)
  return writeBackrefs(opts.db, planned, written, forceBackrefs)
}

/** Keeps the ledger's map of MongoDB ids to record keys current (used to delete after a document is removed). */
function rememberWrites(ledger: Ledger | undefined, did: string, planned: Planned[], written: Map<Planned, WriteResult>) {
  if (!ledger) return
  for (const p of planned) {
    if (!p.item || p.finding === 'duplicate') continue
    if (p.action === 'delete' && written.has(p)) ledger.forget(p.col.mongo, p.item.id)
    else if (written.has(p)) ledger.remember(p.col.mongo, p.item.id, did, p.rkey)
  }
}

/**
 * The full record: fields plus uploaded blobs, validated against the kind's lexicon (the PDS
 * does not validate custom lexicons). An optional blob that cannot be made is reported
 * through `warn` and left out.
 * @throws when a required blob cannot be made or the record fails lexicon validation.
 */
async function buildRecord(plan: Planned, ctx: WriterContext, client: RepoClient, warn: (reason: string) => void): Promise<Record<string, unknown>> {
  const value: Record<string, unknown> = { ...plan.fields }
  for (const blob of plan.col.blobs) {
    let input
    try {
      input = await blob.make(plan.item!, ctx)
    } catch (err) {
      if (blob.required) throw new Error(`${blob.field}: ${(err as Error).message}`)
      warn(`${blob.field} left out: ${(err as Error).message}`)
      continue
    }
    if (!input) continue
    try {
      value[blob.field] = await client.uploadBlob(input)
    } catch (err) {
      throw Object.assign(new Error(`${blob.field}: ${(err as Error).message}`), { status: (err as { status?: number }).status })
    }
  }
  const valid = lexicons.validate(plan.col.nsid, jsonToLex(value as never))
  if (!valid.success) throw new Error(`record fails ${plan.col.nsid}: ${valid.error.message}`)
  return value
}

/** Applies writes in batches; a failing batch is retried write by write so one bad record loses nothing else. */
async function applyInBatches(
  client: RepoClient,
  writes: Array<{ plan: Planned; write: RepoWrite }>,
  outcome: (p: Planned, action: Action, extra?: Partial<Outcome>) => void,
): Promise<Map<Planned, WriteResult>> {
  const written = new Map<Planned, WriteResult>()
  const apply = async (batch: typeof writes) => {
    const results = await client.applyWrites(batch.map((w) => w.write))
    batch.forEach(({ plan }, i) => {
      written.set(plan, results[i])
      outcome(plan, plan.action as Action, { uri: results[i].uri, reason: plan.detail })
    })
  }
  for (let i = 0; i < writes.length; i += MAX_WRITES_PER_CALL) {
    const batch = writes.slice(i, i + MAX_WRITES_PER_CALL)
    try {
      await apply(batch)
    } catch {
      for (const one of batch) {
        try {
          await apply([one])
        } catch (err) {
          if (isTransient(err)) throw err // PDS down or overloaded: the run (or live mode) retries later
          one.plan.action = 'failed'
          outcome(one.plan, 'failed', { reason: `PDS refused ${one.write.action}: ${(err as Error).message}` })
        }
      }
    }
  }
  return written
}

/** Network errors and 5xx answers pass; a 4xx answer is about the write itself. */
export function isTransient(err: unknown): boolean {
  const status = (err as { status?: number }).status
  return status === undefined || status >= 500 || status === 429
}

/** Writes the back-reference updates the plan's outcome calls for (see {@link backrefUpdate}). */
async function writeBackrefs(db: Db, planned: Planned[], written: Map<Planned, WriteResult>, force: boolean): Promise<number> {
  const ops = new Map<string, AnyBulkWriteOperation[]>()
  for (const p of planned) {
    if (!p.item || p.finding === 'duplicate' || p.action === 'failed') continue
    const result = written.get(p)
    const want = p.item.live ? (result?.cid ? { rkey: p.rkey, uri: result.uri, cid: result.cid } : undefined) : null
    if (want === undefined) continue // live but not mirrored (not ready, or failed): leave AC's fields alone
    const update = backrefUpdate(p.col, force ? { ...p.item, backrefShapes: { atproto: { uri: '' } } } : p.item, want)
    if (update) ops.set(p.col.mongo, [...(ops.get(p.col.mongo) ?? []), { updateOne: { filter: { _id: new ObjectId(p.item.id) }, update } }])
  }
  let n = 0
  for (const [collection, batch] of ops) n += (await db.collection(collection).bulkWrite(batch, { ordered: false })).modifiedCount
  return n
}

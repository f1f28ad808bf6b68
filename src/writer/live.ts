import type { ChangeStream, ChangeStreamDocument, Db, Document, ResumeToken } from 'mongodb'
import { DocError, byMongo, readDoc, type Collection } from '../collections/index.js'
import type { Account } from './accounts.js'
import { applyPlan, backfill, flatCounts, repoName, type Action, type Outcome, type WriterOptions } from './backfill.js'
import type { Ledger } from './ledger.js'
import { pdsHandleFor, pdsHandleLabel } from './handles.js'
import { planItem } from './plan.js'
import { RepoClient } from './repo.js'
import { deterministicRkey } from './rkey.js'

export interface LiveOptions extends WriterOptions {
  ledger: Ledger
  /** Seconds between reconcile passes (a full backfill); 0 turns them off. */
  reconcileSeconds: number
  /** Called after each change has been mirrored (for latency measurement and tests). */
  onMirrored?(change: { collection: string; id: string; operation: string }): void
  /** A fresh connection to AC's database, used when the change stream keeps failing. */
  reconnect?(): Promise<Db>
}

export interface LiveStatus {
  /** Changes received and mirrored since start. */
  mirrored: number
  /** Changes waiting: 1 while a change is being retried, plus reconciles queued. */
  backlog: number
  /** Why mirroring is paused (PDS or MongoDB unreachable), if it is. */
  paused?: string
  lastReconcileAt?: string
}

export interface Live {
  status(): LiveStatus
  /** Finishes the change in hand, saves the resume token and stops. */
  stop(): Promise<void>
}

/** Ledger key of the change stream's resume token. */
const TOKEN_KEY = 'changeStreamToken'
const WATCHED = ['users', '@handles']
const BACKREF_FIELD = /^(atproto|at)(\.|$)/
const MAX_BACKOFF_MS = 30_000
/** Retries inside one PDS call in live mode; the change itself is retried until it succeeds. */
const LIVE_RETRIES = 2

/**
 * `writer live`: follows MongoDB with a change stream on AC's five collections and `users`
 * (resume token kept in the ledger, so a restart continues where it stopped) and mirrors each
 * change as it comes: inserts and edits are written at the item's record key, nukes and
 * deletions delete the record, un-nukes bring it back at the same key, a new AC handle changes
 * the PDS handle, and a user whose PDS account is gone gets nothing re-created. A periodic reconcile
 * pass (a full backfill) catches anything the stream missed. When the PDS or MongoDB is
 * unreachable the change in hand is retried with backoff until it succeeds: the writer keeps
 * its place and catches up when the other side returns. Resolves once the stream is open and
 * the initial reconcile pass is done.
 */
export async function startLive(opts: LiveOptions): Promise<Live> {
  const state: LiveStatus = { mirrored: 0, backlog: 0 }
  const runId = opts.ledger.startRun('live')
  const counts: Record<string, number> = {}
  const record = (o: Outcome) => {
    counts[o.action] = (counts[o.action] ?? 0) + 1
    if (o.action === 'skipped' || o.action === 'invalid' || o.action === 'failed') opts.ledger.problem(runId, o)
  }
  const sessions = new Map<string, RepoClient>()
  let stopping = false
  let stream: ChangeStream | undefined
  let db = opts.db
  const current = () => ({ ...opts, db })
  let lastReconcile = 0

  const client = async (account: Account) => {
    let c = sessions.get(account.did)
    if (!c) sessions.set(account.did, (c = await RepoClient.login(opts.pdsUrl, account, opts.log, LIVE_RETRIES)))
    return c
  }

  /** Mirrors one change; throws on transient failures (the caller retries). */
  const handle = async (change: ChangeStreamDocument<Document>) => {
    if (!('ns' in change) || !('documentKey' in change)) return
    const collection = 'coll' in change.ns ? (change.ns.coll ?? '') : ''
    const id = change.documentKey._id as { toHexString?: () => string }
    if (collection === 'users') return forgetSessions(change, sessions)
    if (collection === '@handles') return 'fullDocument' in change && change.fullDocument ? mirrorHandle(change.fullDocument) : undefined
    const col = byMongo.get(collection)
    if (!col) return
    if (change.operationType === 'update' && onlyBackrefs(change.updateDescription.updatedFields, change.updateDescription.removedFields)) return
    // Mirror the document as it is now, not the event's snapshot: a replayed insert (after a
    // restart) must not write content that a later edit already replaced.
    const doc = await db.collection(col.mongo).findOne({ _id: change.documentKey._id })
    if (doc) await mirrorDoc(col, doc)
    else await mirrorRemoval(col, String(id?.toHexString?.() ?? id))
    state.mirrored++
    opts.onMirrored?.({ collection, id: String(id?.toHexString?.() ?? id), operation: change.operationType })
  }

  const mirrorDoc = async (col: Collection, doc: Document) => {
    let item
    try {
      item = readDoc(col, doc)
    } catch (err) {
      if (!(err instanceof DocError)) throw err
      return record({ kind: col.kind, id: String(doc._id), repo: String(doc.user ?? opts.guestUser), action: 'invalid', reason: err.message })
    }
    const account = await findAccount(item.owner ?? opts.guestUser)
    if (!account) {
      if (item.live) record({ kind: col.kind, id: item.id, repo: item.owner ?? opts.guestUser, action: 'skipped', reason: `owner ${item.owner ?? opts.guestUser} has no PDS account` })
      return
    }
    const repo = await client(account)
    const rkey = item.backref?.rkey ?? opts.ledger.whereIs(col.mongo, item.id)?.rkey ?? deterministicRkey(item.id, item.when)
    const planned = await planItem(col, item, rkey, await repo.getRecord(col.nsid, rkey), opts.ctx)
    await applyPlan({ account, items: [{ col, item }] }, repo, [planned], current(), record, false, true)
  }

  /** A new AC handle: the user's PDS handle follows it (AC's rule, src/writer/handles.ts). */
  const mirrorHandle = async (doc: Document) => {
    const account = await findAccount(String(doc._id))
    const user = await db.collection('users').findOne({ _id: doc._id }, { projection: { code: 1 } })
    if (!account?.handle || typeof doc.handle !== 'string') return
    const handle = pdsHandleFor(pdsHandleLabel(doc.handle, String(user?.code ?? '')), account.handle)
    if (handle === account.handle) return
    await (await client(account)).updateHandle(handle)
    await db.collection('users').updateOne({ _id: doc._id }, { $set: { 'atproto.handle': handle } })
    opts.log.info({ did: account.did, handle }, 'PDS handle changed')
  }

  /** A removed document: delete the record the ledger says it has. */
  const mirrorRemoval = async (col: Collection, id: string) => {
    const where = opts.ledger.whereIs(col.mongo, id)
    if (!where) return // never mirrored here, or mirrored before the ledger knew: the reconcile pass finds it
    const account = await accountByDid(where.did)
    if (!account) return // the account is gone: nothing to delete from
    const repo = await client(account)
    const existing = await repo.getRecord(col.nsid, where.rkey)
    if (!existing) return opts.ledger.forget(col.mongo, id)
    await repo.applyWrites([{ action: 'delete', collection: col.nsid, rkey: where.rkey }])
    opts.ledger.forget(col.mongo, id)
    record({ kind: col.kind, id, repo: repoName(account), action: 'delete' as Action, uri: existing.uri })
  }

  const findAccount = async (user: string): Promise<Account | undefined> => {
    const doc = await db.collection('users').findOne({ _id: user as never }, { projection: { atproto: 1 } })
    const { did, password, handle } = (doc?.atproto ?? {}) as Record<string, string | undefined>
    return did && password ? { user, did, password, handle } : undefined
  }

  const accountByDid = async (did: string): Promise<Account | undefined> => {
    const doc = await db.collection('users').findOne({ 'atproto.did': did }, { projection: { _id: 1 } })
    return doc ? findAccount(String(doc._id)) : undefined
  }

  const reconcile = async () => {
    opts.log.info('reconcile pass starting')
    const report = await backfill({ ...current(), runId })
    for (const c of report.changes) counts[c.action] = (counts[c.action] ?? 0) + 1
    opts.ledger.updateRun(runId, { ...counts, mirrored: state.mirrored })
    lastReconcile = Date.now()
    state.lastReconcileAt = new Date(lastReconcile).toISOString()
    opts.log.info({ changes: report.changes.length, durationMs: report.durationMs }, 'reconcile pass done')
  }

  /** Runs `fn` until it succeeds or the writer stops, backing off while the other side is down. */
  const persist = async (what: string, fn: () => Promise<void>) => {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        await fn()
        if (state.paused) opts.log.info({ what }, 'mirroring resumed')
        state.paused = undefined
        return true
      } catch (err) {
        const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.5 + Math.random() / 2)
        state.paused = (err as Error).message
        opts.log.warn({ what, err: state.paused, retryInMs: Math.round(wait), backlog: state.backlog }, 'mirroring paused; retrying')
        await sleep(wait, () => stopping)
      }
    }
    return false
  }

  const loop = async () => {
    while (!stopping) {
      const saved = opts.ledger.getState(TOKEN_KEY)
      try {
        stream = db.watch([{ $match: { 'ns.coll': { $in: [...WATCHED, ...byMongo.keys()] } } }], {
          fullDocument: 'updateLookup', // for users and @handles; items are read afresh
          ...(saved ? { resumeAfter: JSON.parse(saved) as ResumeToken } : {}),
        })
        // The driver opens the stream lazily: the first tryNext starts it, so nothing written
        // after this point can be missed, even during the initial reconcile.
        let change = await stream.tryNext()
        if (!saved && stream.resumeToken) opts.ledger.setState(TOKEN_KEY, JSON.stringify(stream.resumeToken))
        if (!lastReconcile) await persist('initial reconcile', reconcile)
        markReady()
        while (!stopping) {
          if (opts.reconcileSeconds > 0 && Date.now() - lastReconcile > opts.reconcileSeconds * 1000) await persist('reconcile', reconcile)
          change ??= await stream.tryNext()
          if (!change) continue
          const current = change
          state.backlog = 1
          const done = await persist(current.operationType, () => handle(current))
          state.backlog = 0
          if (!done) break // stopping: the change is replayed after restart
          opts.ledger.setState(TOKEN_KEY, JSON.stringify(current._id))
          change = null
          opts.ledger.updateRun(runId, { ...counts, mirrored: state.mirrored })
        }
      } catch (err) {
        if (stopping) break
        opts.log.warn({ err: (err as Error).message }, 'change stream failed; reconnecting and resuming from the saved resume token')
        await sleep(1000, () => stopping)
        const reconnect = opts.reconnect
        if (reconnect) await persist('reconnect to MongoDB', async () => void (db = await reconnect()))
      } finally {
        await stream?.close().catch(() => {})
      }
    }
  }

  let markReady!: () => void
  const ready = new Promise<void>((r) => (markReady = r))
  const running = loop().finally(() => markReady())
  await ready
  opts.log.info({ reconcileSeconds: opts.reconcileSeconds }, 'writer live started')
  return {
    status: () => ({ ...state }),
    async stop() {
      stopping = true
      await stream?.close().catch(() => {})
      await running
      opts.ledger.updateRun(runId, { ...counts, mirrored: state.mirrored }, { finished: true })
      opts.log.info({ mirrored: state.mirrored }, 'writer live stopped')
    },
  }
}

function onlyBackrefs(updated: Document | undefined, removed: string[] | undefined): boolean {
  const fields = [...Object.keys(updated ?? {}), ...(removed ?? [])]
  return fields.length > 0 && fields.every((f) => BACKREF_FIELD.test(f))
}

/** A user removed or without `atproto` any more: drop their session; nothing is re-created for them. */
function forgetSessions(change: ChangeStreamDocument<Document>, sessions: Map<string, RepoClient>) {
  const doc = 'fullDocument' in change ? change.fullDocument : undefined
  if (doc?.atproto?.did) return
  sessions.clear() // rare: cheaper than tracking which session belonged to the removed user
}

async function sleep(ms: number, stop: () => boolean) {
  const until = Date.now() + ms
  while (Date.now() < until && !stop()) await new Promise((r) => setTimeout(r, Math.min(250, until - Date.now())))
}

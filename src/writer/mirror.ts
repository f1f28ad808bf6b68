import type { Db, ObjectId } from 'mongodb'
import { DocError, readDoc, type MirroredCollection, type SourceItem, type WriterContext } from '../collections/index.js'
import type { Logger } from '../log.js'
import { findAccount, findAccountByDid, type Account } from './accounts.js'
import { applyPlan } from './apply.js'
import { isTransient } from './errors.js'
import { pdsHandleFor, pdsHandleLabel } from './handles.js'
import type { Ledger } from './ledger.js'
import { chooseRkey, planItem } from './plan.js'
import type { RepoClient, RepoRecord } from './repo.js'
import type { RunRecorder } from './report.js'
import { deterministicRkey } from './rkey.js'
import type { Sessions } from './sessions.js'

export interface MirrorOptions {
  /** AC's database (live mode swaps the connection after repeated failures). */
  db(): Db
  sessions: Sessions
  ledger: Ledger
  recorder: RunRecorder
  ctx: WriterContext
  guestUser: string
  log: Logger
}

/**
 * Mirrors single MongoDB changes into repos, reading everything afresh each time (so a retry, or
 * a replayed change, writes the state as it is now, never an event's stale copy). Permanent
 * failures (a document that breaks its lexicon, a refused login, a taken handle, a write the PDS
 * refuses) are recorded as problems; transient ones are thrown for the caller to retry.
 */
export class Mirror {
  constructor(private readonly opts: MirrorOptions) {}

  /**
   * The lane of a change to document `_id` of `col`: its owner's `users._id` (the guest account
   * for anonymous items); for a removed document, the owner of the repo the ledger says holds its
   * record. Undefined when there is nothing to do (a removed document never mirrored here).
   */
  async laneOf(col: MirroredCollection, _id: ObjectId): Promise<string | undefined> {
    const doc = await this.opts.db().collection(col.mongo).findOne({ _id })
    if (doc && col.mirrors?.(doc) === false) return undefined
    if (doc) return typeof doc.user === 'string' ? doc.user : this.opts.guestUser
    const where = this.opts.ledger.whereIs(col.mongo, _id.toHexString())
    return where ? (await findAccountByDid(this.opts.db(), where.did, this.opts.log))?.user : undefined
  }

  /** Makes the repo match document `_id` of `col` as it is now: written, updated, deleted or left alone. */
  async item(col: MirroredCollection, _id: ObjectId): Promise<void> {
    const doc = await this.opts.db().collection(col.mongo).findOne({ _id })
    if (!doc) return this.removal(col, _id.toHexString())
    const owner = typeof doc.user === 'string' ? doc.user : this.opts.guestUser
    const account = await findAccount(this.opts.db(), owner, this.opts.log)
    const repo = account ? (account.handle ?? account.did) : owner
    let item: SourceItem
    try {
      item = readDoc(col, doc)
    } catch (err) {
      if (!(err instanceof DocError)) throw err
      return this.opts.recorder.item({
        kind: col.kind,
        id: _id.toHexString(),
        repo,
        action: 'invalid',
        reason: err.message,
        ...(account ? {} : { private: true }),
      })
    }
    if (!account) {
      if (item.live) this.opts.recorder.item({ kind: col.kind, id: item.id, repo, action: 'skipped', reason: 'owner has no PDS account', private: true })
      return
    }
    const client = await this.login(account, { kind: col.kind, id: item.id })
    if (!client) return
    const { rkey, current } = await locateRecord(client, col, item, this.opts.ledger)
    const planned = await planItem(col, item, rkey, current, this.opts.ctx)
    await applyPlan(account, client, [planned], {
      db: this.opts.db(),
      ctx: this.opts.ctx,
      ledger: this.opts.ledger,
      recorder: this.opts.recorder,
      forceBackrefs: true,
    })
  }

  /** A removed document: deletes the record the ledger says it has (the reconcile pass finds any other). */
  private async removal(col: MirroredCollection, id: string): Promise<void> {
    const where = this.opts.ledger.whereIs(col.mongo, id)
    if (!where) return
    const account = await findAccountByDid(this.opts.db(), where.did, this.opts.log)
    if (!account) return // the account is gone: nothing to delete from
    const client = await this.login(account, { kind: col.kind, id })
    if (!client) return
    const existing = await client.getRecord(col.nsid, where.rkey)
    if (existing) await client.applyWrites([{ action: 'delete', collection: col.nsid, rkey: where.rkey }])
    this.opts.ledger.forget(col.mongo, id)
    if (existing) this.opts.recorder.item({ kind: col.kind, id, repo: account.handle ?? account.did, action: 'delete', uri: existing.uri })
  }

  /**
   * A new AC handle for `user` (`@handles`): the PDS handle follows it (AC's rule,
   * src/writer/handles.ts), then `users.atproto.handle`. A handle the PDS refuses (taken, invalid)
   * is a problem of kind `handle` until a later change succeeds.
   */
  async handle(user: string): Promise<void> {
    const db = this.opts.db()
    const [doc, userDoc, account] = await Promise.all([
      db.collection('@handles').findOne({ _id: user as never }),
      db.collection('users').findOne({ _id: user as never }, { projection: { code: 1 } }),
      findAccount(db, user, this.opts.log),
    ])
    if (!account?.handle || typeof doc?.handle !== 'string') return
    const handle = pdsHandleFor(pdsHandleLabel(doc.handle, String(userDoc?.code ?? '')), account.handle)
    if (handle === account.handle) return this.opts.recorder.resolved('handle', account.did)
    const client = await this.login(account, { kind: 'handle', id: account.did })
    if (!client) return
    try {
      await client.updateHandle(handle)
    } catch (err) {
      if (isTransient(err)) throw err
      return this.opts.recorder.problem({
        kind: 'handle',
        id: account.did,
        repo: account.handle,
        action: 'failed',
        reason: `PDS refused the handle: ${(err as Error).message}`,
        detail: handle,
      })
    }
    await db.collection('users').updateOne({ _id: user as never }, { $set: { 'atproto.handle': handle } })
    this.opts.recorder.resolved('handle', account.did)
    this.opts.log.info({ did: account.did, handle }, 'PDS handle changed')
  }

  /** The account's client; a refused login is recorded as the problem of `what` (undefined returned), a transient failure thrown. */
  private async login(account: Account, what: { kind: string; id: string }): Promise<RepoClient | undefined> {
    try {
      return await this.opts.sessions.get(account)
    } catch (err) {
      if (isTransient(err)) throw err
      const problem = { id: what.id, repo: account.handle ?? account.did, action: 'failed' as const, reason: (err as Error).message }
      if (what.kind === 'handle') this.opts.recorder.problem({ ...problem, kind: 'handle' })
      else this.opts.recorder.item({ ...problem, kind: what.kind as MirroredCollection['kind'] })
      return undefined
    }
  }
}

/**
 * Where an item's record is, found without listing the repo: the records at its back-reference's
 * key, at the key the ledger remembers and at its deterministic key, judged by the same rule
 * as the backfill ({@link chooseRkey}).
 */
export async function locateRecord(
  client: RepoClient,
  col: MirroredCollection,
  item: SourceItem,
  ledger: Ledger,
): Promise<{ rkey: string; current?: RepoRecord }> {
  const keys = [
    ...new Set([item.backref?.rkey, ledger.whereIs(col.mongo, item.id)?.rkey, deterministicRkey(item.id, item.when)].filter((k): k is string => !!k)),
  ]
  const onPds = new Map<string, RepoRecord>()
  for (const key of keys) {
    const record = await client.getRecord(col.nsid, key)
    if (record) onPds.set(key, record)
    if (record && key === item.backref?.rkey) break // the back-reference's record wins outright
  }
  const matches = [...onPds.values()]
    .filter((r) => col.normalize(r.value).ref === item.id)
    .map((r) => r.rkey)
    .sort()
  const rkey = chooseRkey(item, onPds, matches)
  return { rkey, current: onPds.get(rkey) }
}

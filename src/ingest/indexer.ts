import { jsonToLex, lexToJson, type LexValue, type Lexicons } from '@atproto/lexicon'
import { sql, type Transaction } from 'kysely'
import { byNsid, type Collection } from '../collections/index.js'
import type { IndexDb, IndexSchema, ItemTable } from '../db/index.js'
import { isoPlusSeconds, smaller } from '../db/sql.js'
import { bumpVersion, knownDid, repoAndStatus, repoRev, saveCursor, upsertActor, upsertRepo } from '../db/store.js'
import { refreshViews } from '../db/views.js'
import { StoredViews, type ViewConfig } from '../item-view.js'
import { lexicons } from '../lexicon/lexicons.js'
import type { Logger } from '../log.js'
import type { Identity } from '../identity.js'
import { metrics } from './metrics.js'
import { lexiconHash } from './lexicon-hash.js'
import { applyPostOp, removePosts, type PostDeleteOp, type PostOp } from './posts.js'
import { Provenance } from './provenance.js'

type Trx = Transaction<IndexSchema>

/** A record version that passed its lexicon: becomes an `item` row (indexedAt and hidden are set on commit). */
export type PutOp = Omit<ItemTable, 'indexedAt' | 'hidden' | 'view' | 'viewKey'> & {
  type: 'put'
  /** What the firehose called it; a backfill says 'create'. Only used for metrics. */
  action: 'create' | 'update'
}

/** A record version that failed its lexicon after normalising: becomes a `quarantine` row. */
export interface QuarantineOp {
  type: 'quarantine'
  uri: string
  cid: string
  did: string
  collection: string
  rev: string
  reason: string
  record: string
}

export type RecordOp = PutOp | QuarantineOp | { type: 'delete'; uri: string; rev: string } | PostOp | PostDeleteOp

/** What a verified repo snapshot holds for the index: AC records (kept or quarantined) and posts. */
export type SnapshotOp = PutOp | QuarantineOp | PostOp

/** One change to the index, collected from firehose events and committed in batches. */
export type IndexOp =
  /** The AC record operations of one repo commit; skipped when the repo's stored rev is at or past `rev`. */
  | { type: 'commit'; did: string; rev: string; ops: RecordOp[] }
  | { type: 'actor'; did: string; handle: string | null; pds: string | null; trusted: boolean }
  | { type: 'status'; did: string; status: string | null }
  /** The repo must be fetched again (a #sync event, or a commit that failed verification). */
  | { type: 'resync'; did: string }

export interface IndexerOptions {
  db: IndexDb
  identity: Identity
  /** Origins of the PDSes whose repos may own short codes (docs/architecture.md, Trust). */
  trustedPds: string[]
  /** Origins of the relays whose #identity, #account and #sync events are believed (TRUSTED_RELAYS); none by default. */
  trustedRelays?: string[]
  log: Logger
  /** Told every actor's trust as it is resolved (the post filter keeps its set of trusted accounts with it). */
  onActor?(did: string, trusted: boolean): void
  /**
   * The AppView's view configuration (AC_PUBLIC_URL, BLOB_CDN_TEMPLATE, VIEW_URL_ORIGINS): each
   * item's list view is then kept with its row (`item.view`, migration 007), so AppViews of the
   * same configuration build feed pages without parsing records. Without it no view is stored and
   * the AppView builds them all.
   */
  views?: ViewConfig
}

/** Where a repo's data came from: a host's origin, or {@link OWN_PDS}. */
export type DataSource = string | typeof OWN_PDS
/** The data is fetched from the PDS the DID document names (a backfill's getRepo): that PDS hosts the repo. */
export const OWN_PDS = Symbol('the PDS of the DID document')

/**
 * How far past the time a record was first indexed its `when` may sort, in ms: a client's clock
 * may run a little ahead, but a record dated 2099 must not sit on top of the feeds for good.
 */
export const SORT_SKEW_MS = 5 * 60_000

/** Item rows per INSERT (16 values each: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters). */
const PUT_BATCH = 500

/**
 * Turns record versions into index operations and commits them, with the cursor, in one
 * transaction of the index (SQLite or PostgreSQL). Every operation is idempotent by uri and cid,
 * and guarded by the repo rev (per repo in `repo.rev`, per record in `item.rev`), so replays
 * after a crash or a reconnect, and a backfill overlapping the live stream, change nothing. Every
 * transaction that changes what the AppView answers goes through {@link write}, which bumps the
 * index version with it.
 */
export class Indexer {
  private readonly knownActors = new Set<string>()
  private readonly hash = lexiconHash()
  /** Who may speak for a repo: trust from provenance, account events from the DID's own PDS. */
  readonly provenance: Provenance
  /** Builds the stored views, when configured. */
  private readonly views?: StoredViews

  constructor(private readonly opts: IndexerOptions) {
    this.provenance = new Provenance({ identity: opts.identity, trustedPds: opts.trustedPds, trustedRelays: opts.trustedRelays ?? [], log: opts.log })
    if (opts.views) this.views = new StoredViews(opts.views, (field) => metrics.viewUrlsDropped.inc({ field }))
  }

  /**
   * Rebuilds every stored view that does not match this ingest's view configuration and its
   * author's current PDS (all of them after migration 007, or after the configuration changed),
   * one transaction per batch. Nothing without a view configuration.
   * @returns the rows rebuilt.
   */
  async refreshViews(): Promise<number> {
    const views = this.views
    if (!views) return 0
    let total = 0
    let after: string | undefined
    for (;;) {
      const batch = await this.write((trx) => refreshViews(trx, views, { after }))
      total += batch.rows
      if (!batch.last) return total
      after = batch.last
    }
  }

  get db(): IndexDb {
    return this.opts.db
  }

  /**
   * A valid record becomes a `put`; one that fails its lexicon after normalising goes to
   * quarantine. Never throws on bad records. `raw` is the record as decoded from CBOR.
   */
  recordOp(col: Collection, did: string, rkey: string, cid: string, rev: string, raw: unknown, action: PutOp['action'] = 'create'): PutOp | QuarantineOp {
    return recordOpFromJson(col, did, rkey, cid, rev, lexToJson(raw as LexValue) as Record<string, unknown>, action)
  }

  /**
   * The `actor` operation for `did` (handle verified both ways, PDS, trusted or not by
   * {@link Provenance.trusted}, given that its data came `from` a host or the DID's own PDS);
   * empty when the actor is known already, unless `refresh` (after an #identity event).
   * @throws when trust cannot be established now (the trusted PDS is unreachable).
   */
  async actorOps(did: string, opts: { from: DataSource; refresh?: boolean }): Promise<IndexOp[]> {
    if (this.knownActors.has(did) && !opts.refresh) return []
    const { handle, pds } = await this.opts.identity.resolve(did, opts.refresh)
    const trusted = await this.provenance.trusted(did, pds, opts.from === OWN_PDS ? pds : opts.from)
    this.knownActors.add(did)
    this.opts.onActor?.(did, trusted)
    return [{ type: 'actor', did, handle, pds, trusted }]
  }

  /** Whether the index holds anything of `did` (an actor row or a repo row). */
  async knows(did: string): Promise<boolean> {
    return this.knownActors.has(did) || (await knownDid(this.opts.db, did))
  }

  /**
   * Runs `apply` in one transaction of the index and bumps the index version with it, so
   * AppViews drop their cached answers when it commits; `changed` says from `apply`'s result
   * whether anything they answer changed (default: yes). A firehose batch that only moves the
   * cursor (on a relay, nearly all of them) leaves the version, and their caches, alone.
   */
  async write<T>(apply: (trx: Trx) => Promise<T>, changed: (result: T) => boolean = () => true): Promise<T> {
    return this.opts.db.transaction().execute(async (trx) => {
      const result = await apply(trx)
      if (changed(result)) await bumpVersion(trx)
      return result
    })
  }

  /**
   * Commits `ops` and the cursor (`seq` on `service`) in one transaction.
   * @returns the DIDs whose repos must be re-fetched (resync ops and nothing else).
   */
  async commit(ops: IndexOp[], service: string, seq: number, eventTime: string | null): Promise<string[]> {
    const now = new Date().toISOString()
    const applied: RecordOp[] = []
    const resync: string[] = []
    await this.write(
      async (trx) => {
        let seen = false // anything readers see changed: the index version moves only then
        for (const op of ops) {
          if (op.type === 'commit') {
            const result = await this.applyCommit(trx, op, service, now)
            if (result !== 'skipped') applied.push(...op.ops)
            if (result === 'applied') seen = true
          } else if (op.type === 'resync') resync.push(op.did)
          else {
            await this.applyAccountOp(trx, op, now)
            seen = true
          }
        }
        await saveCursor(trx, service, seq, eventTime, now)
        return seen
      },
      (seen) => seen,
    )
    countApplied(applied)
    return resync
  }

  /**
   * Replaces what the index holds for `did` with a verified repo snapshot at `rev` (backfill):
   * adds missing records, updates changed ones (by cid), deletes the ones the repo no longer has.
   * With `posts` (the ingest indexes posts), the same for the repo's posts: `ops` then holds every
   * post the index keeps, and a held post missing from it leaves the index.
   * @returns 'stale' and changes nothing when live commits past `rev` are already applied (the
   *   caller fetches the repo again), else the counts of changes.
   */
  async applySnapshot(
    did: string,
    source: string,
    rev: string,
    ops: SnapshotOp[],
    actor: IndexOp[],
    opts: { posts: boolean } = { posts: false },
  ): Promise<'stale' | { put: number; deleted: number }> {
    const now = new Date().toISOString()
    const applied: RecordOp[] = []
    const result = await this.write(
      async (trx): Promise<'stale' | { put: number; deleted: number }> => {
        const stored = await repoRev(trx, did)
        if (stored && stored > rev) return 'stale'
        for (const op of actor) await this.applyAccountOp(trx, op, now)
        const held = await heldVersions(trx, did, opts.posts)
        const changed = ops.filter((op) => held.get(op.uri) !== `${op.type}:${op.cid}`)
        await this.putItems(
          trx,
          changed.filter((op) => op.type === 'put'),
          now,
        )
        for (const op of changed.filter((op) => op.type !== 'put')) await this.applyRecordOp(trx, op, now)
        const keep = new Set(ops.map((o) => o.uri))
        const gone: RecordOp[] = [...held]
          .filter(([uri]) => !keep.has(uri))
          .map(([uri, version]) => (version.startsWith('post:') ? { type: 'post-delete', uri, rev } : { type: 'delete', uri, rev }))
        for (const op of gone) await this.applyRecordOp(trx, op, now)
        await upsertRepo(trx, did, source, { source, rev, state: 'done', error: null }, now)
        applied.push(...changed, ...gone)
        return { put: changed.length, deleted: gone.length }
      },
      (r) => r !== 'stale',
    )
    countApplied(applied)
    return result
  }

  /**
   * Records an inactive repo of a host's listing (backfill): the actor's `status` (see
   * {@link setStatus}), and the repo done in the run of `source`.
   */
  async markInactive(did: string, source: string, status: string): Promise<void> {
    const now = new Date().toISOString()
    await this.write(async (trx) => {
      await setStatus(trx, did, status, now)
      await upsertRepo(trx, did, source, { state: 'done' }, now)
    })
  }

  /** Removes everything indexed from `did`'s repo (its PDS no longer lists it; see {@link removeRepo}). */
  async removeRepo(did: string): Promise<void> {
    await this.write((trx) => removeRepo(trx, did))
  }

  /**
   * Applies one commit's record ops unless the repo already reflects `rev`, or its account was
   * deleted (deletion is final; a replay of older events must not bring records back).
   * @returns 'skipped', 'applied', or 'unseen' when applied but nothing readers see changed (the
   *   removal of posts the index does not hold).
   */
  private async applyCommit(trx: Trx, op: Extract<IndexOp, { type: 'commit' }>, service: string, now: string): Promise<'skipped' | 'applied' | 'unseen'> {
    const { rev: stored, status } = await repoAndStatus(trx, op.did)
    if ((stored && stored >= op.rev) || status === 'deleted') return 'skipped'
    let seen = false
    for (const rop of op.ops) if (await this.applyRecordOp(trx, rop, now)) seen = true
    await upsertRepo(trx, op.did, service, { rev: op.rev }, now)
    return seen ? 'applied' : 'unseen'
  }

  /**
   * One record version or deletion; idempotent by uri and guarded by `item.rev`.
   * @returns false when it surely changed nothing readers see (see applyPostOp), else true.
   */
  async applyRecordOp(trx: Trx, op: RecordOp, now: string): Promise<boolean> {
    switch (op.type) {
      case 'put':
        await this.putItems(trx, [op], now)
        break
      case 'quarantine': {
        const { type: _, ...row } = op
        await trx.deleteFrom('item').where('uri', '=', op.uri).where('rev', '<=', op.rev).execute()
        await trx
          .insertInto('quarantine')
          .values({ ...row, lexiconHash: this.hash, firstSeen: now, lastSeen: now })
          .onConflict((oc) =>
            oc.column('uri').doUpdateSet({ cid: op.cid, rev: op.rev, reason: op.reason, record: op.record, lexiconHash: this.hash, lastSeen: now }),
          )
          .execute()
        this.opts.log.warn({ uri: op.uri, reason: op.reason }, 'record quarantined')
        break
      }
      case 'delete':
        await trx.deleteFrom('item').where('uri', '=', op.uri).where('rev', '<=', op.rev).execute()
        await trx.deleteFrom('quarantine').where('uri', '=', op.uri).execute()
        break
      case 'post':
      case 'post-delete':
        return applyPostOp(trx, op, now)
    }
    return true
  }

  /**
   * Writes record versions into `item` (one statement per {@link PUT_BATCH}; uris distinct) and
   * releases them from quarantine. A stored version of a later rev is kept (`item.rev` guard);
   * `indexedAt` is kept from the first version, and `sortAt` stays clamped to it plus
   * {@link SORT_SKEW_MS}; `hidden` follows the author's account status.
   */
  private async putItems(trx: Trx, ops: PutOp[], now: string): Promise<void> {
    const latest = new Date(Date.parse(now) + SORT_SKEW_MS).toISOString()
    for (let i = 0; i < ops.length; i += PUT_BATCH) {
      const chunk = ops.slice(i, i + PUT_BATCH)
      const pds = this.views ? await actorPds(trx, chunk) : undefined
      const rows = chunk.map(({ type: _, action: __, ...row }) => ({
        ...row,
        ...this.storedView(row, pds),
        sortAt: earliest(row.sortAt, latest),
        indexedAt: now,
        hidden: sql<number>`case when exists (select 1 from actor where did = ${row.did} and status is not null) then 1 else 0 end`,
      }))
      await trx
        .insertInto('item')
        .values(rows)
        .onConflict((oc) =>
          oc
            .column('uri')
            .doUpdateSet((eb) => ({
              cid: eb.ref('excluded.cid'),
              rev: eb.ref('excluded.rev'),
              code: eb.ref('excluded.code'),
              slug: eb.ref('excluded.slug'),
              // clamped to the time this uri was first indexed, plus the skew
              sortAt: smaller(trx, eb.ref('excluded.sortAt'), isoPlusSeconds(trx, eb.ref('item.indexedAt'), SORT_SKEW_MS / 1000)),
              record: eb.ref('excluded.record'),
              view: eb.ref('excluded.view'),
              viewKey: eb.ref('excluded.viewKey'),
            }))
            .where('item.rev', '<=', (eb) => eb.ref('excluded.rev')),
        )
        .execute()
      await trx
        .deleteFrom('quarantine')
        .where(
          'uri',
          'in',
          chunk.map((op) => op.uri),
        )
        .execute()
    }
  }

  /**
   * `item.view` and `item.viewKey` of a record version (src/item-view.ts, `storedView`), built
   * with its author's PDS as the actor rows hold it (`pds`); both null without a view
   * configuration, or when the record cannot be viewed (the AppView then builds the view itself).
   */
  private storedView(
    row: Pick<PutOp, 'uri' | 'cid' | 'did' | 'kind' | 'record'>,
    pds: Map<string, string | null> | undefined,
  ): { view: string | null; viewKey: string | null } {
    if (!this.views || !pds) return { view: null, viewKey: null }
    try {
      return this.views.build(row, row.record, pds.get(row.did) ?? null)
    } catch (err) {
      this.opts.log.warn({ uri: row.uri, err }, 'item view not stored')
      return { view: null, viewKey: null }
    }
  }

  /**
   * Identity and account operations ({@link setStatus} for account status). An actor's views are
   * rebuilt with it when its PDS changed (blob URLs name it), in the same transaction.
   */
  private async applyAccountOp(trx: Trx, op: IndexOp, now: string): Promise<void> {
    if (op.type === 'actor') {
      await upsertActor(trx, op.did, { handle: op.handle, pds: op.pds, trusted: op.trusted ? 1 : 0 }, now)
      if (this.views) for (let after: string | undefined, batch; (batch = await refreshViews(trx, this.views, { did: op.did, after })).last;) after = batch.last
    } else if (op.type === 'status') await setStatus(trx, op.did, op.status, now)
  }
}

/**
 * Sets an actor's account status (null: active). Per the ATProto account spec: takendown,
 * suspended and deactivated hide an actor (reversible), which is copied onto its items
 * (`item.hidden`) so that feeds skip them through their index at no cost; deleted removes
 * everything indexed from the repo.
 */
async function setStatus(trx: Trx, did: string, status: string | null, now: string): Promise<void> {
  if (status === 'deleted') await removeRepo(trx, did)
  await upsertActor(trx, did, { status }, now)
  await trx
    .updateTable('item')
    .set({ hidden: status === null ? 0 : 1 })
    .where('did', '=', did)
    .execute()
}

/** The PDS origin the actor rows hold for each author of `ops` (null when unknown, or no row yet). */
async function actorPds(trx: Trx, ops: PutOp[]): Promise<Map<string, string | null>> {
  const dids = [...new Set(ops.map((op) => op.did))]
  const rows = await trx.selectFrom('actor').select(['did', 'pds']).where('did', 'in', dids).execute()
  return new Map(rows.map((r) => [r.did, r.pds]))
}

/** The earlier of two ISO 8601 UTC times of the same format. */
function earliest(a: string, b: string): string {
  return a < b ? a : b
}

/** Deletes every item, post, quarantined record and repo row of `did`. */
async function removeRepo(trx: Trx, did: string): Promise<void> {
  await trx.deleteFrom('item').where('did', '=', did).execute()
  await removePosts(trx, did)
  await trx.deleteFrom('quarantine').where('did', '=', did).execute()
  await trx.deleteFrom('repo').where('did', '=', did).execute()
}

/** What the index holds for `did`: uri → `put:cid` (item), `quarantine:cid`, and with `posts` `post:cid`. */
async function heldVersions(trx: Trx, did: string, posts: boolean): Promise<Map<string, string>> {
  const items = await trx.selectFrom('item').select(['uri', 'cid']).where('did', '=', did).execute()
  const quarantined = await trx.selectFrom('quarantine').select(['uri', 'cid']).where('did', '=', did).execute()
  const kept = posts ? await trx.selectFrom('post').select(['uri', 'cid']).where('did', '=', did).execute() : []
  return new Map([
    ...items.map((r) => [r.uri, `put:${r.cid}`] as const),
    ...quarantined.map((r) => [r.uri, `quarantine:${r.cid}`] as const),
    ...kept.map((r) => [r.uri, `post:${r.cid}`] as const),
  ])
}

/** Per-collection create/update/delete and quarantine counters, after a successful commit. */
function countApplied(ops: RecordOp[]): void {
  for (const op of ops) {
    const collection = op.uri.split('/')[3]
    if (op.type === 'post') metrics.posts.inc({ action: op.action })
    else if (op.type === 'post-delete') metrics.posts.inc({ action: 'delete' })
    else if (op.type === 'put') metrics.records.inc({ collection, action: op.action })
    else if (op.type === 'delete') metrics.records.inc({ collection, action: 'delete' })
    else metrics.quarantinedTotal.inc({ collection })
  }
}

/**
 * The index operation for a record given as lexicon JSON: normalised (AC's legacy shapes, see
 * the collection module), validated, then a `put` or a `quarantine` with the reason.
 */
export function recordOpFromJson(
  col: Collection,
  did: string,
  rkey: string,
  cid: string,
  rev: string,
  json: Record<string, unknown>,
  action: PutOp['action'] = 'create',
  lex: Lexicons = lexicons,
): PutOp | QuarantineOp {
  const uri = `at://${did}/${col.nsid}/${rkey}`
  const record = col.normalize(json)
  const reason = validationError(col, record, lex)
  if (reason) return { type: 'quarantine', uri, cid, did, collection: col.nsid, rev, reason, record: JSON.stringify(json) }
  const code = col.codePrefix && typeof record.code === 'string' ? record.code : null
  const slug = col.urlSlug?.(record) ?? null
  return {
    type: 'put',
    action,
    uri,
    did,
    kind: col.kind,
    rkey,
    cid,
    rev,
    code,
    slug,
    sortAt: new Date(record.when as string).toISOString(),
    record: JSON.stringify(record),
  }
}

/** The collection module of an exact NSID (the firehose filter is a prefix match), or undefined. */
export function collectionOf(nsid: string): Collection | undefined {
  return byNsid.get(nsid)
}

/**
 * Why `record` fails its lexicon in `lex`, or null. Besides `@atproto/lexicon` validation
 * (types, required fields, string lengths, formats), checks each blob's `accept` and `maxSize`
 * from the lexicon, which that validator does not.
 */
export function validationError(col: Collection, record: Record<string, unknown>, lex: Lexicons = lexicons): string | null {
  const result = lex.validate(col.nsid, jsonToLex(record as never))
  if (!result.success) return result.error.message
  const def = lex.getDefOrThrow(col.nsid) as { record: { properties: Record<string, { type: string; accept?: string[]; maxSize?: number }> } }
  for (const [field, prop] of Object.entries(def.record.properties)) {
    const blob = record[field] as { mimeType?: string; size?: number } | undefined
    if (prop.type !== 'blob' || !blob) continue
    if (prop.accept && !prop.accept.some((a) => a === blob.mimeType || (a.endsWith('/*') && blob.mimeType?.startsWith(a.slice(0, -1))))) {
      return `Record/${field} mimeType ${blob.mimeType} is not one of ${prop.accept.join(', ')}`
    }
    if (prop.maxSize !== undefined && (blob.size ?? 0) > prop.maxSize) return `Record/${field} is ${blob.size} bytes, more than ${prop.maxSize}`
  }
  return null
}

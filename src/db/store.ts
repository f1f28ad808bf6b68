import { sql, type Kysely } from 'kysely'
import { backendOf } from './sql.js'
import type { ActorTable, BackfillTable, CursorTable, IndexSchema, RepoTable } from './index.js'

/**
 * The ingest's bookkeeping in the index, one place per table and decision, on both engines: the
 * firehose cursors, backfill runs and per-repo progress, actor and repo rows, and the index
 * version. Functions take the index or a transaction on it (`Kysely<IndexSchema>`); the caller
 * decides what commits together (a batch's rows with its cursor, src/ingest/indexer.ts).
 */
type Db = Kysely<IndexSchema>

/** Channel of the PostgreSQL notification sent with every version bump (payload: the new version). */
export const VERSION_CHANNEL = 'ac_index_version'

// ---- cursors ----

/** The last seq committed for `service`; undefined when there is none, or only a live-tail mark (-1). */
export async function storedCursor(db: Db, service: string): Promise<number | undefined> {
  const row = await db.selectFrom('cursor').select('seq').where('service', '=', service).executeTakeFirst()
  return row && row.seq >= 0 ? row.seq : undefined
}

/** Every host's cursor row (`/xrpc/_health`, `doctor`). */
export function cursorRows(db: Db): Promise<CursorTable[]> {
  return db.selectFrom('cursor').selectAll().orderBy('service').execute()
}

/** Stores `seq` (and the host's `eventTime` of it) as `service`'s cursor; in the transaction of the rows it covers. */
export async function saveCursor(db: Db, service: string, seq: number, eventTime: string | null, now: string): Promise<void> {
  await db
    .insertInto('cursor')
    .values({ service, seq, eventTime, updatedAt: now })
    .onConflict((oc) => oc.column('service').doUpdateSet({ seq, eventTime, updatedAt: now }))
    .execute()
}

/** Forgets `service`'s cursor (the host answered FutureCursor: it was reset). */
export async function dropCursor(db: Db, service: string): Promise<void> {
  await db.deleteFrom('cursor').where('service', '=', service).execute()
}

/**
 * Records that `service` is followed from its live tail before any event arrived: a cursor row
 * with seq -1, so heartbeats and /xrpc/_health see the host. Never replaces a real cursor.
 */
export async function markLiveTail(db: Db, service: string): Promise<void> {
  const now = new Date().toISOString()
  await db
    .insertInto('cursor')
    .values({ service, seq: -1, eventTime: null, updatedAt: now })
    .onConflict((oc) => oc.column('service').doNothing())
    .execute()
}

/** Marks the ingest alive for `service` without moving its cursor (heartbeat while idle and connected). */
export async function touchCursor(db: Db, service: string): Promise<void> {
  await db.updateTable('cursor').set({ updatedAt: new Date().toISOString() }).where('service', '=', service).execute()
}

// ---- the index version ----

/**
 * Bumps `index_version` in the transaction `trx` (every ingest transaction that changes answers
 * calls it); on PostgreSQL also notifies {@link VERSION_CHANNEL} with the new version, delivered
 * to listening AppViews when the transaction commits (src/db/version.ts).
 */
export async function bumpVersion(trx: Db): Promise<void> {
  const bump = trx
    .updateTable('index_version')
    .set((eb) => ({ version: eb('version', '+', 1) }))
    .where('id', '=', 1)
  if (backendOf(trx) === 'sqlite') await bump.execute()
  else await sql`with bumped as (${bump.returning('version')}) select pg_notify(${VERSION_CHANNEL}, version::text) from bumped`.execute(trx) // one round trip
}

// ---- actors and repos ----

/**
 * Writes `did`'s actor row: its identity (`handle`, `pds`, `trusted`) from a DID resolution, or
 * its account `status` from an #account event or a listing; the other fields are kept (a new row
 * starts with no identity, untrusted and active).
 */
export async function upsertActor(
  db: Db,
  did: string,
  set: Pick<ActorTable, 'handle' | 'pds' | 'trusted'> | Pick<ActorTable, 'status'>,
  now: string,
): Promise<void> {
  const fresh = { handle: null, pds: null, trusted: 0, status: null }
  await db
    .insertInto('actor')
    .values({ did, ...fresh, ...set, updatedAt: now })
    .onConflict((oc) => oc.column('did').doUpdateSet({ ...set, updatedAt: now }))
    .execute()
}

/**
 * Writes `did`'s repo row: `set` on an existing row; a new row gets `set` too, with `source` and
 * otherwise no rev, no backfill state, no attempts. Callers: a live commit (its rev), a backfilled
 * snapshot (rev, done, its host), an inactive repo of a listing (done).
 */
export async function upsertRepo(db: Db, did: string, source: string, set: Partial<Omit<RepoTable, 'did' | 'updatedAt'>>, now: string): Promise<void> {
  const fresh = { source, rev: null, state: null, attempts: 0, error: null }
  await db
    .insertInto('repo')
    .values({ did, ...fresh, ...set, updatedAt: now })
    .onConflict((oc) => oc.column('did').doUpdateSet({ ...set, updatedAt: now }))
    .execute()
}

/** The newest rev the index reflects for `did`'s repo, if any (live commits at or below it are applied already). */
export async function repoRev(db: Db, did: string): Promise<string | null | undefined> {
  return (await db.selectFrom('repo').select('rev').where('did', '=', did).executeTakeFirst())?.rev
}

/** In one statement: the newest rev the index reflects for `did`'s repo and its account status (null, null when unknown). */
export async function repoAndStatus(db: Db, did: string): Promise<{ rev: string | null; status: string | null }> {
  return db
    .selectNoFrom((eb) => [
      eb.selectFrom('repo').select('rev').where('did', '=', did).as('rev'),
      eb.selectFrom('actor').select('status').where('did', '=', did).as('status'),
    ])
    .executeTakeFirstOrThrow()
}

/** Whether the index holds anything of `did` (an actor row or a repo row). */
export async function knownDid(db: Db, did: string): Promise<boolean> {
  const actor = await db.selectFrom('actor').select('did').where('did', '=', did).executeTakeFirst()
  return (actor ?? (await db.selectFrom('repo').select('did').where('did', '=', did).executeTakeFirst())) !== undefined
}

// ---- backfill runs and per-repo progress ----

/** Backfill progress of one host, as /xrpc/_health reports it. */
export interface BackfillProgress extends BackfillTable {
  pending: number
  done: number
  failed: number
}

/** Starts a new run of `source` (status running): every repo of `source` leaves the previous run's state. */
export async function beginBackfill(db: Db, source: string, reason: string): Promise<void> {
  const now = new Date().toISOString()
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('backfill')
      .values({ source, status: 'running', reason, startedAt: now, finishedAt: null })
      .onConflict((oc) => oc.column('source').doUpdateSet({ status: 'running', reason, startedAt: now, finishedAt: null }))
      .execute()
    await trx.updateTable('repo').set({ state: null, attempts: 0, error: null }).where('source', '=', source).execute()
  })
}

/** Marks the run of `source` done. */
export async function finishBackfill(db: Db, source: string): Promise<void> {
  await db.updateTable('backfill').set({ status: 'done', finishedAt: new Date().toISOString() }).where('source', '=', source).execute()
}

/** Whether `source` has a backfill that started and did not finish (crash, stop). */
export async function backfillUnfinished(db: Db, source: string): Promise<boolean> {
  const row = await db.selectFrom('backfill').select('status').where('source', '=', source).executeTakeFirst()
  return row?.status === 'running'
}

/** Per-host progress of every backfill this index has run (repos pending, done, failed in the current run). */
export async function backfillProgress(db: Db): Promise<BackfillProgress[]> {
  const runs = await db.selectFrom('backfill').selectAll().execute()
  const counts = await db
    .selectFrom('repo')
    .select(['source', 'state', (eb) => eb.fn.countAll<number>().as('n')])
    .where('state', 'is not', null)
    .groupBy(['source', 'state'])
    .execute()
  const count = (source: string, state: string) => Number(counts.find((c) => c.source === source && c.state === state)?.n ?? 0)
  return runs.map((r) => ({ ...r, pending: count(r.source, 'pending'), done: count(r.source, 'done'), failed: count(r.source, 'failed') }))
}

/** Lists `dids` in the run of `source`: new repos and repos outside the run become pending; others keep their state. */
export async function markListed(db: Db, source: string, dids: string[]): Promise<void> {
  const now = new Date().toISOString()
  for (let i = 0; i < dids.length; i += 500) {
    await db
      .insertInto('repo')
      .values(dids.slice(i, i + 500).map((did) => ({ did, source, rev: null, state: 'pending', attempts: 0, error: null, updatedAt: now })))
      .onConflict((oc) => oc.column('did').doUpdateSet((eb) => ({ source, state: eb.fn.coalesce('repo.state', eb.val('pending')) })))
      .execute()
  }
}

/** The repos of `source` still pending in its run. */
export async function pendingRepos(db: Db, source: string): Promise<string[]> {
  return (await db.selectFrom('repo').select('did').where('source', '=', source).where('state', '=', 'pending').execute()).map((r) => r.did)
}

/**
 * Records a failed fetch of `did`: one more attempt and the error; the repo becomes `failed` at
 * `maxAttempts`, else stays pending.
 * @returns the attempts so far and the new state, with the repo's host.
 */
export async function recordRepoFailure(
  db: Db,
  did: string,
  error: string,
  maxAttempts: number,
): Promise<{ attempts: number; state: 'failed' | 'pending'; source: string | undefined }> {
  const row = await db.selectFrom('repo').select(['attempts', 'source']).where('did', '=', did).executeTakeFirst()
  const attempts = (row?.attempts ?? 0) + 1
  const state = attempts >= maxAttempts ? 'failed' : 'pending'
  await db.updateTable('repo').set({ attempts, error, state, updatedAt: new Date().toISOString() }).where('did', '=', did).execute()
  return { attempts, state, source: row?.source }
}

/**
 * Repos of `source` outside the current run (not listed again), untouched by live commits since
 * `before` (ISO time), whose active actor's PDS is `origin`: candidates for removal when the
 * host no longer lists them.
 */
export async function unlistedRepos(db: Db, source: string, origin: string, before: string): Promise<string[]> {
  const rows = await db
    .selectFrom('repo')
    .innerJoin('actor', 'actor.did', 'repo.did')
    .select('repo.did')
    .where('repo.source', '=', source)
    .where('repo.state', 'is', null)
    .where('repo.updatedAt', '<', before)
    .where('actor.pds', '=', origin)
    .where('actor.status', 'is', null)
    .execute()
  return rows.map((r) => r.did)
}

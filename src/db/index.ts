import fs from 'node:fs'
import path from 'node:path'
import SqliteDb from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { Kysely, PostgresDialect, SqliteDialect, type Generated, type PostgresPool, type PostgresPoolClient, type SqliteDatabase } from 'kysely'
import { LRUCache } from 'lru-cache'
import { Migrator } from 'kysely/migration'
import pg from 'pg'
import { migrations } from '../../migrations/index.js'
import { stripUserinfo } from '../redact.js'
import { bumpVersion } from './store.js'

/** Index schema (see migrations/). Times are ISO 8601 UTC strings. */
export interface ActorTable {
  did: string
  handle: string | null
  /** Origin of the actor's PDS, from its DID document. */
  pds: string | null
  /** 1 when `pds` is one of TRUSTED_PDS: only such actors can own a short code. */
  trusted: number
  /** ATProto account status (takendown, suspended, deactivated…); null when active. */
  status: string | null
  updatedAt: string
}

export interface ItemTable {
  uri: string
  did: string
  kind: string
  rkey: string
  cid: string
  /** Repo revision of the commit that wrote this version; replays never go backwards. */
  rev: string
  code: string | null
  /**
   * The slug AC's URLs name the item by (`painting~@handle/<slug>`: a painting's image slug), from
   * its collection module's `urlSlug`; null for other kinds (004).
   */
  slug: string | null
  /**
   * Feeds sort by it: the record's `when`, normalised to ISO UTC, but no later than the time the
   * uri was first indexed plus a few minutes (005; a record dated 2099 does not stay on top).
   */
  sortAt: string
  /** When the uri was first indexed (kept across updates). */
  indexedAt: string
  /** The normalised record as lexicon JSON. */
  record: string
  /** 1 while the author's account is hidden (`actor.status` set): feeds skip it through their index (005). */
  hidden: Generated<number>
  /**
   * The item's list view without `indexedAt` and `author`, as the ingest built it (007,
   * src/item-view.ts `storedView`); null until built.
   */
  view: Generated<string | null>
  /** What `view` was built from besides the record: view configuration key and author's PDS (007, `viewStamp`); null with `view`. */
  viewKey: Generated<string | null>
}

export interface QuarantineTable {
  uri: string
  cid: string
  did: string
  collection: string
  reason: string
  record: string
  firstSeen: string
  lastSeen: string
  /** Repo rev of the quarantined version (002). */
  rev: string | null
  /** Hash of the record lexicons the record was last checked against (002); a re-check runs when it differs. */
  lexiconHash: string | null
}

/** Per repository: what the index reflects and where its backfill stands (002). */
export interface RepoTable {
  did: string
  /** Firehose host (PDS or relay) that last listed or streamed this repo. */
  source: string
  /** Newest repo rev the index reflects; live commits at or below it are already applied. */
  rev: string | null
  /** Backfill state in the current run: 'pending', 'done', 'failed'; null when not part of one. */
  state: string | null
  attempts: number
  /** Last backfill error, for operators. */
  error: string | null
  updatedAt: string
}

/** One backfill run per firehose host (002). */
export interface BackfillTable {
  source: string
  /** 'running' or 'done'. */
  status: string
  /** Why it ran: 'requested', 'first start', 'outdated cursor', 'future cursor'. */
  reason: string
  startedAt: string
  finishedAt: string | null
}

/**
 * One row (`id` 1): a counter the ingest bumps in every transaction that changes what the AppView
 * answers (006). AppView replicas on PostgreSQL drop their caches when it moves (src/db/version.ts).
 */
export interface IndexVersionTable {
  id: number
  version: number
}

export interface CursorTable {
  /** The firehose host (PDS or relay) this cursor belongs to. */
  service: string
  /** Last `seq` whose events are all in the index; -1 while following the live tail before any event (bigint on PostgreSQL). */
  seq: number
  /** `time` of that event, as the host stamped it. */
  eventTime: string | null
  /** Last time the ingest wrote this row: events or its heartbeat while connected. */
  updatedAt: string
}

/** An `app.bsky.feed.post` about AC, or with media by an account seen on TRUSTED_PDS (004). */
export interface PostTable {
  uri: string
  did: string
  cid: string
  /** Repo revision of the commit that wrote this version; replays never go backwards. */
  rev: string
  /** The post's `createdAt`, never later than the time its host sequenced it; feeds sort by it. */
  sortAt: string
  indexedAt: string
  /** 1 when the post points at AC (a link, an external embed or a URL in its text). */
  about: number
  /** `image` or `video` when the post embeds one; null otherwise. */
  media: string | null
}

/** What a post points at (004): an AC item by code, painting slug or mood rkey. */
export interface PostRefTable {
  post: string
  /** The item's kind (`painting`, `kidlisp`, `tape`, `mood`) or `news`. */
  kind: string
  /** How `key` names the item: `code`, `slug` (a painting's image slug) or `rkey` (a mood's). */
  via: string
  key: string
  /** The post's sortAt and author, copied so a kind's feed is read from one index. */
  sortAt: string
  did: string
}

export interface IndexSchema {
  actor: ActorTable
  item: ItemTable
  quarantine: QuarantineTable
  cursor: CursorTable
  repo: RepoTable
  backfill: BackfillTable
  post: PostTable
  post_ref: PostRefTable
  index_version: IndexVersionTable
}

export type IndexDb = Kysely<IndexSchema>

export { backendOf, type Backend } from './sql.js'

/** Whether `target` (INDEX_DATABASE_URL, INDEX_READ_URL or a SQLite path) names a PostgreSQL database. */
export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target)
}

/** `target` as it may be shown or logged: a database URL without its user and password, a path as it is. */
export function describeIndex(target: string): string {
  return isPostgresUrl(target) ? stripUserinfo(target).replace(/\?.*$/, '') : target
}

/**
 * How values come back from PostgreSQL: `bigint` (`count(*)`, `cursor.seq`) as a JS number, as
 * SQLite returns them (firehose seqs and counts stay far below 2^53); every other type as `pg`
 * parses it.
 */
export const PG_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
}

export interface OpenOptions {
  /** PostgreSQL: connections in the pool at most (default 10, `pg`'s). */
  poolSize?: number
}

/**
 * Opens the index at `target`: a PostgreSQL database when it is a `postgres://` or
 * `postgresql://` URL (kysely's PostgresDialect over a `pg` pool, statements prepared per
 * connection: see {@link preparedQuery}), else the SQLite file at that path (':memory:' allowed;
 * created with its folder if needed) in WAL mode. Does not migrate: call {@link migrateIndex}.
 * Nothing connects before the first query.
 */
export function openIndex(target: string, opts: OpenOptions = {}): IndexDb {
  if (isPostgresUrl(target)) return openSession(preparingPool(postgresPool(target, opts.poolSize)))
  if (target !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true })
  const sqlite = new SqliteDb(target)
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('busy_timeout = 5000')
  return onSqlite(sqlite)
}

/** Kysely over an open better-sqlite3 connection, its statements prepared once ({@link preparingDatabase}). */
export function onSqlite(sqlite: SqliteDb.Database): IndexDb {
  return new Kysely<IndexSchema>({ dialect: new SqliteDialect({ database: preparingDatabase(sqlite) }) })
}

/** SQL texts kept prepared per SQLite connection (the ingest's writes are a few dozen shapes). */
const SQLITE_PREPARED_MAX = 256

/**
 * `sqlite` as kysely's database, each SQL text of at most {@link PREPARE_MAX_SQL} characters
 * prepared once and reused: kysely's driver prepares every query it runs afresh, which cost the
 * ingest's per-record writes more than running them. The SQLite counterpart of
 * {@link preparedQuery}. Reusing a statement is safe because kysely runs one query at a time on a
 * connection (a stream holds it until it ends), and SQLite re-prepares a statement by itself after
 * a schema change.
 */
function preparingDatabase(sqlite: SqliteDb.Database): SqliteDatabase {
  const prepared = new LRUCache<string, SqliteDb.Statement>({ max: SQLITE_PREPARED_MAX })
  return {
    close: () => sqlite.close(),
    prepare(text) {
      if (text.length > PREPARE_MAX_SQL) return sqlite.prepare(text)
      let stmt = prepared.get(text)
      if (!stmt) prepared.set(text, (stmt = sqlite.prepare(text)))
      return stmt
    },
  }
}

/** Kysely over one PostgreSQL session that the caller holds (the ingest leader's, src/ingest/leader.ts). */
export function openSession(pool: PostgresPool): IndexDb {
  return new Kysely<IndexSchema>({ dialect: new PostgresDialect({ pool }) })
}

/**
 * Longest SQL text run as a named prepared statement. Statements of one row (the ingest's
 * per-record writes, the AppView's lookups) are prepared once per connection and then only
 * executed; long multi-row ones (a distinct text per row count) are parsed each time, so a
 * connection holds a bounded set of prepared statements.
 */
const PREPARE_MAX_SQL = 1200

/**
 * `client.query(sql, params)` as kysely calls it, run as a named prepared statement (its name a
 * hash of the text: PostgreSQL parses and plans it once per connection) when it has parameters
 * and is at most {@link PREPARE_MAX_SQL} characters long.
 */
export function preparedQuery(client: pg.ClientBase): PostgresPoolClient['query'] {
  return ((text: string | object, values?: unknown[]) => {
    if (typeof text !== 'string' || !values?.length || text.length > PREPARE_MAX_SQL) return (client.query as (...a: unknown[]) => unknown)(text, values)
    return client.query({ name: `k${createHash('sha1').update(text).digest('base64url').slice(0, 20)}`, text, values })
  }) as PostgresPoolClient['query']
}

/** `pool` as kysely's pool, its clients running statements through {@link preparedQuery}. */
function preparingPool(pool: pg.Pool): PostgresPool {
  return {
    options: pool.options,
    end: () => pool.end(),
    async connect() {
      const client = await pool.connect()
      return {
        processID: (client as unknown as { processID?: number }).processID,
        query: preparedQuery(client),
        release: (destroy?: boolean) => client.release(destroy),
      }
    },
  }
}

/** A `pg` pool on `url` with {@link PG_TYPES}; `max` connections at most (default 10). */
export function postgresPool(url: string, max?: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, types: PG_TYPES })
  pool.on('error', () => {}) // an idle client's connection died: the pool drops it and dials again on demand
  return pool
}

/**
 * Applies every pending migration in migrations/, and bumps the index version when any ran (a
 * migration may change rows AppViews already serve from their caches).
 * @returns the names of the migrations applied.
 * @throws the failing migration's error, naming it.
 */
export async function migrateIndex(db: IndexDb): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const { error, results } = await migrator.migrateToLatest()
  const failed = results?.find((r) => r.status === 'Error')
  if (error) throw new Error(`index migration ${failed?.migrationName ?? ''} failed: ${String(error)}`)
  const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
  if (applied.length) await bumpVersion(db)
  return applied
}

/** Names of the migrations in migrations/ not yet applied to `db` (empty when current). */
export async function pendingMigrations(db: IndexDb): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name)
}

/** Applies the migrations up to and including `name` only (tests of `doctor`: an index an upgrade left behind). */
export async function migrateIndexTo(db: IndexDb, name: string): Promise<void> {
  const { error } = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo(name)
  if (error) throw error
}

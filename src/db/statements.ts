import SqliteDb from 'better-sqlite3'
import type { Compilable } from 'kysely'
import type pg from 'pg'
import type { Logger } from '../log.js'
import { isPostgresUrl, onSqlite, openSession, postgresPool, type Backend, type IndexDb } from './index.js'
import { VersionWatcher } from './version.js'

/** Named placeholder of a prepared statement: `p('kind')` stands for `values.kind` at run time. */
export type Param = <T = string>(name: string) => T

/**
 * Read-only access to the index for the AppView, on either engine: queries written with kysely
 * (typed against {@link IndexSchema}), compiled once per shape and run as prepared statements,
 * and the index version its caches key on.
 */
export interface Statements {
  readonly backend: Backend
  /** kysely over the same read connection(s): compiles the statements and runs occasional queries. */
  readonly db: IndexDb
  /**
   * Every row of the query `build` makes (compiled and prepared once per `key`, a name unique to
   * its shape), with `values` bound to its named placeholders.
   */
  all<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T[]>
  /** The first row, or undefined; see {@link all}. */
  get<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T | undefined>
  /**
   * A number that changes whenever the ingest commits a change readers can see; undefined while
   * it cannot be known (then nothing may be cached). Synchronous and cheap: read per request.
   */
  version(): number | undefined
  /** Resolves once {@link version} is known (on PostgreSQL: listening for changes), for callers that expect caching from the first request. */
  ready(): Promise<void>
  close(): Promise<void>
}

export interface StatementOptions {
  /** INDEX_READ_URL: a PostgreSQL read replica to read from instead of `target`. */
  readUrl?: string
  /** PostgreSQL: connections in the read pool at most. */
  poolSize?: number
  log: Logger
}

/**
 * {@link Statements} on the index at `target` (a SQLite path, which must exist, or a PostgreSQL
 * URL; see openIndex): on SQLite a read-only connection of its own (WAL: reads never wait for the
 * ingest) with better-sqlite3 statements and the `index_version` row as the version (read again
 * only when `PRAGMA data_version` says another connection committed); on PostgreSQL
 * a `pg` pool on `readUrl` or `target`, named prepared statements (parsed once per connection),
 * and the version from a {@link VersionWatcher} listening on `target`.
 */
export function openStatements(target: string, opts: StatementOptions): Statements {
  return isPostgresUrl(target) ? new PostgresStatements(target, opts) : new SqliteStatements(target)
}

/** A compiled statement, with the order in which its named values bind. */
interface Compiled {
  sql: string
  /** Per placeholder in the SQL: a value name, or a constant the query builder made a parameter. */
  binds: Array<{ name: string } | { value: unknown }>
}

const MARK = '\u0000param:'

/** Compiles `build` with marked placeholders, so values can be bound by name at run time. */
function compile(build: (p: Param) => Compilable): Compiled {
  const compiled = build(((name: string) => MARK + name) as Param).compile()
  return {
    sql: compiled.sql,
    binds: compiled.parameters.map((v) => (typeof v === 'string' && v.startsWith(MARK) ? { name: v.slice(MARK.length) } : { value: v })),
  }
}

function bindValues(binds: Compiled['binds'], values: Record<string, unknown>): unknown[] {
  return binds.map((b) => ('name' in b ? values[b.name] : b.value))
}

class SqliteStatements implements Statements {
  readonly backend = 'sqlite'
  readonly db: IndexDb
  private readonly sqlite: SqliteDb.Database
  private readonly prepared = new Map<string, { stmt: SqliteDb.Statement; binds: Compiled['binds'] }>()
  private readonly dataVersionStmt: SqliteDb.Statement
  private indexVersionStmt?: SqliteDb.Statement
  /** The last `PRAGMA data_version` seen, and the `index_version` row read then. */
  private seen?: { dataVersion: number; version: number | undefined }

  constructor(file: string) {
    this.sqlite = new SqliteDb(file, { readonly: true, fileMustExist: true })
    this.db = onSqlite(this.sqlite)
    this.dataVersionStmt = this.sqlite.prepare('pragma data_version').pluck()
  }

  async all<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T[]> {
    const { stmt, binds } = this.statement(key, build)
    return stmt.all(...bindValues(binds, values)) as T[]
  }

  async get<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T | undefined> {
    const { stmt, binds } = this.statement(key, build)
    return stmt.get(...bindValues(binds, values)) as T | undefined
  }

  /**
   * The `index_version` row, which the ingest bumps only with changes readers can see. It is read
   * again only when `PRAGMA data_version` (a microsecond) moved: that changes whenever another
   * connection commits, cursor-only batches and heartbeats included. The row is read after the
   * pragma, so a commit between the two is seen now or on the next call, never missed.
   */
  version(): number | undefined {
    const dataVersion = this.dataVersionStmt.get() as number
    if (this.seen?.dataVersion !== dataVersion) this.seen = { dataVersion, version: this.indexVersion() }
    return this.seen.version
  }

  /** The `index_version` row; undefined on an index not yet migrated to 006 (then nothing is cached). */
  private indexVersion(): number | undefined {
    try {
      this.indexVersionStmt ??= this.sqlite.prepare('select version from index_version where id = 1').pluck()
    } catch {
      return undefined
    }
    return this.indexVersionStmt.get() as number | undefined
  }

  async ready(): Promise<void> {}

  async close(): Promise<void> {
    await this.db.destroy() // closes the connection
  }

  private statement(key: string, build: (p: Param) => Compilable) {
    let prepared = this.prepared.get(key)
    if (!prepared) {
      const { sql, binds } = compile(build)
      prepared = { stmt: this.sqlite.prepare(sql), binds }
      this.prepared.set(key, prepared)
    }
    return prepared
  }
}

class PostgresStatements implements Statements {
  readonly backend = 'postgres'
  readonly db: IndexDb
  private readonly pool: pg.Pool
  private readonly compiled = new Map<string, Compiled>()
  private readonly watcher: VersionWatcher

  constructor(target: string, opts: StatementOptions) {
    this.pool = postgresPool(opts.readUrl ?? target, opts.poolSize)
    this.db = openSession(this.pool)
    this.watcher = new VersionWatcher(target, this.pool, opts.readUrl === undefined, opts.log)
  }

  async all<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T[]> {
    const { sql, binds } = this.statement(key, build)
    return (await this.pool.query({ name: key, text: sql, values: bindValues(binds, values) })).rows as T[]
  }

  async get<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T | undefined> {
    return (await this.all<T>(key, build, values))[0]
  }

  version(): number | undefined {
    return this.watcher.version()
  }

  ready(): Promise<void> {
    return this.watcher.ready()
  }

  async close(): Promise<void> {
    await this.watcher.close()
    await this.db.destroy() // ends the pool, if kysely ever used it
    // Prepared statements run on the pool itself: kysely, never used, leaves it open, and its idle
    // connections would keep the process alive for pg's idle timeout (10 s) after a SIGTERM.
    if (!this.pool.ended) await this.pool.end()
  }

  private statement(key: string, build: (p: Param) => Compilable): Compiled {
    let compiled = this.compiled.get(key)
    if (!compiled) this.compiled.set(key, (compiled = compile(build)))
    return compiled
  }
}

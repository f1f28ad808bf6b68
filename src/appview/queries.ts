import type SqliteDb from 'better-sqlite3'
import type { Compilable, SelectQueryBuilder } from 'kysely'
import { sql } from 'kysely'
import { KINDS, type Kind } from '../collections/index.js'
import type { IndexDb, IndexSchema } from '../db/index.js'
import type { FeedPosition } from './cursor.js'

/** An item row joined with its author's actor row, without the record (views are cached). */
export interface FeedRow {
  uri: string
  cid: string
  did: string
  kind: string
  indexedAt: string
  sortAt: string
  handle: string | null
  pds: string | null
}

/** A code's winning claimant, with its author's account status (null when active). */
export type CodeRow = FeedRow & { status: string | null }

export interface FeedQuery {
  did?: string
  kind?: Kind
  limit: number
  after?: FeedPosition
}

/** Named placeholder of a prepared statement: `p('kind')` stands for `values.kind` at run time. */
export type Param = <T = string>(name: string) => T

/** A statement prepared once, with the order in which its named values bind. */
interface Prepared {
  stmt: SqliteDb.Statement
  /** Per `?` in the SQL: a value name, or a constant the query builder inlined as a parameter. */
  binds: Array<{ name: string } | { value: unknown }>
}

const MARK = '\u0000param:'

/**
 * The AppView's read path over the SQLite index: queries written with kysely (typed against
 * {@link IndexSchema}), compiled once per shape and run as cached better-sqlite3 prepared
 * statements on a connection of their own (WAL: readers never wait for the ingest's writes).
 * All methods are synchronous: each is one indexed lookup taking microseconds.
 */
export class IndexReader {
  private readonly prepared = new Map<string, Prepared>()
  private versionStmt?: SqliteDb.Statement

  /**
   * @param sqlite a connection to the index (read-only is enough)
   * @param qb kysely over the same schema, used only to build and compile SQL
   */
  constructor(
    private readonly sqlite: SqliteDb.Database,
    private readonly qb: IndexDb,
  ) {}

  /**
   * One page of a feed, newest `sortAt` first (a record's `when`, no later than its first
   * indexing plus a few minutes), ties by uri descending, only items of visible actors (see
   * {@link feedItems}); `limit + 1` rows are read so the caller knows whether another page
   * exists. Keyset pagination: `after` is the last row of the previous page.
   */
  feedPage(q: FeedQuery): FeedRow[] {
    const shape = `feed:${q.did ? 'd' : ''}${q.kind ? 'k' : ''}${q.after ? 'a' : ''}`
    return this.all<FeedRow>(
      shape,
      (p) => {
        let query = feedItems(this.qb)
        // An author feed is served only for a visible actor, all of whose items are visible.
        query = q.did ? query.where('item.did', '=', p('did')) : query.where('item.hidden', '=', 0)
        if (q.kind) query = query.where('item.kind', '=', p('kind'))
        if (q.after) query = query.where((eb) => eb(eb.refTuple('item.sortAt', 'item.uri'), '<', eb.tuple(p('sortAt'), p('uri'))))
        return query.orderBy('item.sortAt', 'desc').orderBy('item.uri', 'desc').limit(p<number>('limit'))
      },
      { did: q.did, kind: q.kind, sortAt: q.after?.sortAt, uri: q.after?.uri, limit: q.limit + 1 },
    )
  }

  /**
   * The record holding a short code (design.md, code authority): among items of `kind` with
   * `code` from repos on TRUSTED_PDS (`actor.trusted`, set by the ingest), the earliest `when`
   * wins, ties by uri ({@link earliestFirst}; index `item_code_authority` holds claimants in that
   * order). Untrusted claims never win. The winner is
   * returned even when its author is hidden (`status` set): the caller answers NotFound then,
   * so a takedown never hands the code to the next claimant.
   */
  codeWinner(kind: Kind, code: string): CodeRow | undefined {
    return this.get<CodeRow>(
      'code',
      (p) =>
        earliestFirst(
          this.qb
            .selectFrom('item')
            .innerJoin('actor', 'actor.did', 'item.did')
            .select([...FEED_COLUMNS, 'actor.status'])
            .where('item.kind', '=', p('kind'))
            .where('item.code', '=', p('code'))
            .where('actor.trusted', '=', 1),
        ).limit(1),
      { kind, code },
    )
  }

  /** The stored (normalised, lexicon JSON) record of `uri` and its cid, or undefined once deleted. */
  record(uri: string): { cid: string; record: string } | undefined {
    return this.get('record', (p) => this.qb.selectFrom('item').select(['cid', 'record']).where('uri', '=', p('uri')), { uri })
  }

  /** The visible actor for a DID or handle (handles are stored lowercase and compare so). */
  findActor(actor: string): { did: string; handle: string | null } | undefined {
    const column = actor.startsWith('did:') ? 'did' : 'handle'
    return this.get(
      `actor:${column}`,
      (p) => this.qb.selectFrom('actor').select(['did', 'handle']).where(column, '=', p('actor')).where('status', 'is', null),
      { actor: column === 'handle' ? actor.toLowerCase() : actor },
    )
  }

  /** Item counts per kind of one actor; kinds without items count 0. */
  countsByKind(did: string): Record<Kind, number> {
    const rows = this.all<{ kind: string; n: number }>(
      'counts',
      (p) => this.qb.selectFrom('item').select(['kind', sql<number>`count(*)`.as('n')]).where('did', '=', p('did')).groupBy('kind'),
      { did },
    )
    const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>
    for (const r of rows) if (r.kind in counts) counts[r.kind as Kind] = r.n
    return counts
  }

  /**
   * SQLite's `PRAGMA data_version` on this connection: changes whenever another connection (the
   * ingest) commits to the index. Cheap; the response cache keys its freshness on it.
   */
  dataVersion(): number {
    this.versionStmt ??= this.sqlite.prepare('pragma data_version').pluck()
    return this.versionStmt.get() as number
  }

  /** Closes the connection. */
  close(): void {
    this.sqlite.close()
  }

  /**
   * Every row of the query `build` makes (compiled and prepared once per `key`, a name unique to
   * its shape), with `values` bound to its named placeholders. Other readers of the index (the
   * feed generator's) run their queries through it too.
   */
  all<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): T[] {
    const { stmt, binds } = this.statement(key, build)
    return stmt.all(...bindValues(binds, values)) as T[]
  }

  /** The first row of the query `build` makes, or undefined; see {@link all}. */
  get<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): T | undefined {
    const { stmt, binds } = this.statement(key, build)
    return stmt.get(...bindValues(binds, values)) as T | undefined
  }

  /** The prepared statement of `key`, compiled from `build` on first use. */
  private statement(key: string, build: (p: Param) => Compilable): Prepared {
    let prepared = this.prepared.get(key)
    if (!prepared) {
      const compiled = build(((name: string) => MARK + name) as Param).compile()
      const binds = compiled.parameters.map((v) => (typeof v === 'string' && v.startsWith(MARK) ? { name: v.slice(MARK.length) } : { value: v }))
      prepared = { stmt: this.sqlite.prepare(compiled.sql), binds }
      this.prepared.set(key, prepared)
    }
    return prepared
  }
}

function bindValues(binds: Prepared['binds'], values: Record<string, unknown>): unknown[] {
  return binds.map((b) => ('name' in b ? values[b.name] : b.value))
}

const FEED_COLUMNS = ['item.uri', 'item.cid', 'item.did', 'item.kind', 'item.indexedAt', 'item.sortAt', 'actor.handle', 'actor.pds'] as const

/**
 * Feed rows joined with their author's handle and PDS. Items of accounts that are taken down,
 * suspended, deactivated or deleted (`actor.status`, from #account events) are hidden everywhere:
 * the ingest copies that status onto the items (`item.hidden`, migration 005), which leads the
 * site-wide feed indexes, so a page reads visible items only however many rows hidden actors
 * hold. The actor row is one lookup per row; a LEFT JOIN keeps the item index driving the scan
 * (an inner join turns into a scan of all actors once the tables are analysed).
 */
function feedItems(qb: IndexDb) {
  return qb.selectFrom('item').leftJoin('actor', 'actor.did', 'item.did').select(FEED_COLUMNS)
}

/**
 * Code authority's order among claimants (design.md): earliest `when` (`sortAt`) first, ties by
 * uri. `resolveCode` applies it to trusted claimants; the operators' conflict list to all of
 * them, trusted first, so its first row per code is the owner when it is trusted.
 */
export function earliestFirst<O>(query: SelectQueryBuilder<IndexSchema, 'item' | 'actor', O>) {
  return query.orderBy('item.sortAt', 'asc').orderBy('item.uri', 'asc')
}

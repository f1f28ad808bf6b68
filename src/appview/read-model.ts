import type { Compilable, SelectQueryBuilder } from 'kysely'
import { sql } from 'kysely'
import { KINDS, type Kind } from '../collections/index.js'
import type { CursorTable, IndexDb, IndexSchema } from '../db/index.js'
import { openStatements, type Param, type StatementOptions, type Statements } from '../db/statements.js'
import { backfillProgress, cursorRows, type BackfillProgress } from '../db/store.js'
import type { FeedPosition } from './cursor.js'

export type { Param } from '../db/statements.js'

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

/** A stored record: its cid and the normalised record as lexicon JSON text. */
export interface StoredRecord {
  cid: string
  record: string
}

/** A stored item view (`item.view`, `item.viewKey`) and the cid of the version it shows; view and key null until the ingest builds them. */
export interface StoredView {
  cid: string
  view: string | null
  viewKey: string | null
}

/** What `/xrpc/_health` reads: every host's cursor row, backfill progress, the quarantine's size, and the index version answers reflect. */
export interface IngestState {
  cursors: CursorTable[]
  backfills: BackfillProgress[]
  quarantined: number
  /** See {@link ReadModel.answeredVersion}. */
  indexVersion: number | null
}

/** A quarantined record as the dashboard lists it. */
export interface QuarantinedRecord {
  uri: string
  did: string
  collection: string
  reason: string
  firstSeen: string
  lastSeen: string
}

/** One claimant of a contested code, in code-authority order (see {@link ReadModel.contestedCodes}). */
export interface ClaimantRow {
  kind: string
  code: string
  uri: string
  did: string
  sortAt: string
  handle: string | null
  trusted: number
  status: string | null
}

/**
 * The AppView's one way into the index, on SQLite or PostgreSQL: the hot queries (feeds, codes,
 * records, actors, profile counts) compiled once and run as prepared statements
 * (src/db/statements.ts), the ingest's state for `/xrpc/_health`, and the operator's counts and
 * lists; plus the index version the caches key on. Read-only; it never opens the writer's or the
 * ingest's files.
 */
export class ReadModel {
  constructor(private readonly statements: Statements) {}

  /** The read model of the index at `target` (INDEX_DATABASE_URL or the SQLite path; see openStatements). */
  static open(target: string, opts: StatementOptions): ReadModel {
    return new ReadModel(openStatements(target, opts))
  }

  /** kysely over the read connection(s): builds the statements of other readers of the index (the feed generator's). */
  get qb(): IndexDb {
    return this.statements.db
  }

  /**
   * One page of a feed, newest `sortAt` first (a record's `when`, no later than its first
   * indexing plus a few minutes), ties by uri descending, only items of visible actors (see
   * {@link feedItems}); `limit + 1` rows are read so the caller knows whether another page
   * exists. Keyset pagination: `after` is the last row of the previous page.
   */
  feedPage(q: FeedQuery): Promise<FeedRow[]> {
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
   * The record holding a short code (code authority): among items of `kind` with `code` from
   * repos on TRUSTED_PDS (`actor.trusted`, set by the ingest), the earliest `when` wins, ties by
   * uri ({@link earliestFirst}; index `item_code_authority` holds claimants in that order).
   * Untrusted claims never win. The winner is returned even when its author is hidden (`status`
   * set): the caller answers NotFound then, so a takedown never hands the code to the next
   * claimant.
   */
  codeWinner(kind: Kind, code: string): Promise<CodeRow | undefined> {
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

  /**
   * The stored records of `uris` by uri (deleted ones are missing): on SQLite one prepared lookup
   * each (microseconds), on PostgreSQL one statement for all (`uri = any($1)`: one round trip).
   */
  async records(uris: string[]): Promise<Map<string, StoredRecord>> {
    if (uris.length === 0) return new Map()
    const columns = ['uri', 'cid', 'record'] as const
    const rows =
      this.statements.backend === 'postgres'
        ? await this.all<StoredRecord & { uri: string }>(
            'records',
            (p) =>
              this.qb
                .selectFrom('item')
                .select(columns)
                .where('uri', '=', sql<string>`any(${p('uris')})`),
            { uris },
          )
        : await Promise.all(
            uris.map((uri) =>
              this.get<StoredRecord & { uri: string }>('record', (p) => this.qb.selectFrom('item').select(columns).where('uri', '=', p('uri')), { uri }),
            ),
          )
    return new Map(rows.filter((r) => r !== undefined).map((r) => [r.uri, { cid: r.cid, record: r.record }]))
  }

  /**
   * The views the ingest stored with the rows of `uris` (migration 007; src/item-view.ts,
   * `storedView`), with the cid and stamp they were built for, by uri (deleted ones missing): one
   * statement for all (`uri = any($1)` on PostgreSQL, `uri in (select value from json_each(?))`
   * on SQLite: one primary-key lookup each). Never the records.
   */
  async storedViews(uris: string[]): Promise<Map<string, StoredView>> {
    if (uris.length === 0) return new Map()
    const columns = ['uri', 'cid', 'view', 'viewKey'] as const
    const rows =
      this.statements.backend === 'postgres'
        ? await this.all<StoredView & { uri: string }>(
            'views',
            (p) =>
              this.qb
                .selectFrom('item')
                .select(columns)
                .where('uri', '=', sql<string>`any(${p('uris')})`),
            { uris },
          )
        : await this.all<StoredView & { uri: string }>(
            'views',
            (p) =>
              this.qb
                .selectFrom('item')
                .select(columns)
                .where('uri', 'in', sql<string>`(select value from json_each(${p('uris')}))`),
            { uris: JSON.stringify(uris) },
          )
    return new Map(rows.map((r) => [r.uri, { cid: r.cid, view: r.view, viewKey: r.viewKey }]))
  }

  /** The visible actor for a DID or handle (handles are stored lowercase and compare so). */
  findActor(actor: string): Promise<{ did: string; handle: string | null } | undefined> {
    const column = actor.startsWith('did:') ? 'did' : 'handle'
    return this.get(
      `actor:${column}`,
      (p) => this.qb.selectFrom('actor').select(['did', 'handle']).where(column, '=', p('actor')).where('status', 'is', null),
      { actor: column === 'handle' ? actor.toLowerCase() : actor },
    )
  }

  /** Item counts per kind of one actor; kinds without items count 0. */
  async countsByKind(did: string): Promise<Record<Kind, number>> {
    const rows = await this.all<{ kind: string; n: number }>(
      'counts',
      (p) =>
        this.qb
          .selectFrom('item')
          .select(['kind', sql<number>`count(*)`.as('n')])
          .where('did', '=', p('did'))
          .groupBy('kind'),
      { did },
    )
    return byKindCount(rows)
  }

  /** Every firehose host's cursor row, backfill progress, the quarantine's size and the version answered (`/xrpc/_health`). */
  async ingestState(): Promise<IngestState> {
    const [cursors, backfills, quarantined, indexVersion] = await Promise.all([
      cursorRows(this.qb),
      backfillProgress(this.qb),
      this.qb
        .selectFrom('quarantine')
        .select(sql<number>`count(*)`.as('n'))
        .executeTakeFirstOrThrow(),
      this.answeredVersion(),
    ])
    return { cursors, backfills, quarantined: Number(quarantined.n), indexVersion }
  }

  /**
   * The `index_version` (bumped by every ingest transaction that changes answers) this process's answers reflect: on
   * SQLite the row itself (answers always see the latest commit); on PostgreSQL the version its
   * caches were last told of and its reads have reached (null while unknown). AppView processes
   * showing the same number answer alike; one behind the primary's row reads a lagging replica.
   */
  async answeredVersion(): Promise<number | null> {
    if (this.statements.backend === 'postgres') return this.statements.version() ?? null
    return (await this.qb.selectFrom('index_version').select('version').executeTakeFirst())?.version ?? null
  }

  /** Indexed items per kind, hidden authors included (what the index holds). */
  async itemCounts(): Promise<Record<Kind, number>> {
    return byKindCount(
      await this.qb
        .selectFrom('item')
        .select(['kind', sql<number>`count(*)`.as('n')])
        .groupBy('kind')
        .execute(),
    )
  }

  /** Actors in all, on TRUSTED_PDS, and hidden (an account status set). */
  async actorCounts(): Promise<{ total: number; trusted: number; hidden: number }> {
    const row = await this.qb
      .selectFrom('actor')
      .select([sql<number>`count(*)`.as('total'), sql<number>`coalesce(sum(trusted), 0)`.as('trusted'), sql<number>`count(status)`.as('hidden')])
      .executeTakeFirstOrThrow()
    return { total: Number(row.total), trusted: Number(row.trusted), hidden: Number(row.hidden) }
  }

  /** The quarantine's size and its `limit` most recently seen records. */
  async quarantine(limit: number): Promise<{ total: number; recent: QuarantinedRecord[] }> {
    const [total, recent] = await Promise.all([
      this.qb
        .selectFrom('quarantine')
        .select(sql<number>`count(*)`.as('n'))
        .executeTakeFirstOrThrow(),
      this.qb
        .selectFrom('quarantine')
        .select(['uri', 'did', 'collection', 'reason', 'firstSeen', 'lastSeen'])
        .orderBy('lastSeen', 'desc')
        .limit(limit)
        .execute(),
    ])
    return { total: Number(total.n), recent }
  }

  /**
   * The claimants of the first `limit` codes (by kind, then code) that more than one indexed
   * record claims, trusted or not, in code-authority order per code: trusted first, then
   * {@link earliestFirst}, the order `resolveCode` applies.
   */
  contestedCodes(limit: number): Promise<ClaimantRow[]> {
    const contested = this.qb
      .selectFrom('item')
      .select(['kind', 'code'])
      .where('code', 'is not', null)
      .groupBy(['kind', 'code'])
      .having(sql`count(*)`, '>', 1)
      .orderBy('kind')
      .orderBy('code')
      .limit(limit)
    return earliestFirst(
      this.qb
        .selectFrom('item')
        .innerJoin('actor', 'actor.did', 'item.did')
        .select(['item.kind', 'item.code', 'item.uri', 'item.did', 'item.sortAt', 'actor.handle', 'actor.trusted', 'actor.status'])
        .where((eb) => eb(eb.refTuple('item.kind', 'item.code'), 'in', contested.$asTuple('kind', 'code')))
        .orderBy('actor.trusted', 'desc'),
    ).execute() as Promise<ClaimantRow[]>
  }

  /**
   * The index version: it changes whenever the ingest commits a change readers can see; undefined
   * while unknown (then nothing may be cached). See Statements.version.
   */
  dataVersion(): number | undefined {
    return this.statements.version()
  }

  /** Resolves once the version is known (see Statements.ready). */
  ready(): Promise<void> {
    return this.statements.ready()
  }

  /** Closes the connection(s). */
  close(): Promise<void> {
    return this.statements.close()
  }

  /**
   * Every row of the query `build` makes, as a prepared statement (see Statements.all). Other
   * readers of the index (the feed generator's) run their queries through it too.
   */
  all<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T[]> {
    return this.statements.all(key, build, values)
  }

  /** The first row of the query `build` makes, or undefined; see {@link all}. */
  get<T>(key: string, build: (p: Param) => Compilable, values: Record<string, unknown>): Promise<T | undefined> {
    return this.statements.get(key, build, values)
  }
}

/** Counts per kind from `{ kind, n }` rows; kinds without rows count 0. */
function byKindCount(rows: Array<{ kind: string; n: number }>): Record<Kind, number> {
  const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>
  for (const r of rows) if (r.kind in counts) counts[r.kind as Kind] = Number(r.n)
  return counts
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
 * Code authority's order among claimants: earliest `when` (`sortAt`) first, ties by
 * uri. `resolveCode` applies it to trusted claimants; the operators' conflict list to all of
 * them, trusted first, so its first row per code is the owner when it is trusted.
 */
export function earliestFirst<O>(query: SelectQueryBuilder<IndexSchema, 'item' | 'actor', O>) {
  return query.orderBy('item.sortAt', 'asc').orderBy('item.uri', 'asc')
}

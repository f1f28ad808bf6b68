import { type Kysely, sql } from 'kysely'

/**
 * AppView read path (issue 6):
 * - `item_code_authority (kind, code, sortAt, uri)` replaces `item_code (kind, code)`: a code's
 *   claimants come out already in code-authority order (earliest `when`, then uri), so
 *   `resolveCode` needs no sort, and the query planner cannot prefer a kind-wide scan;
 * - the four feed indexes are rebuilt covering (`did`, `kind`, `cid`, `indexedAt` appended), so
 *   a feed page is read from the index alone, without visiting the table rows, which hold the
 *   records (KidLisp sources up to 50,000 characters).
 * Same keys and order as 001's indexes: every query 001's indexes served is still served.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index item_code_authority on item (kind, code, "sortAt", uri) where code is not null`.execute(db)
  await sql`drop index item_code`.execute(db)
  for (const [name, key] of FEED_INDEXES) {
    await sql`drop index ${sql.id(name)}`.execute(db)
    await sql`create index ${sql.id(name)} on item (${sql.raw(key)}, ${sql.raw(COVERED)})`.execute(db)
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const [name, key] of FEED_INDEXES) {
    await sql`drop index ${sql.id(name)}`.execute(db)
    await sql`create index ${sql.id(name)} on item (${sql.raw(key)})`.execute(db)
  }
  await sql`create index item_code on item (kind, code) where code is not null`.execute(db)
  await sql`drop index item_code_authority`.execute(db)
}

/** 001's feed indexes and their keys. */
const FEED_INDEXES = [
  ['item_feed', '"sortAt" desc, uri desc'],
  ['item_kind_feed', 'kind, "sortAt" desc, uri desc'],
  ['item_author_feed', 'did, "sortAt" desc, uri desc'],
  ['item_author_kind_feed', 'did, kind, "sortAt" desc, uri desc'],
] as const

/** Columns a feed page reads besides the key (duplicates of key columns are harmless). */
const COVERED = 'did, kind, cid, "indexedAt"'

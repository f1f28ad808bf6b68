import { PostgresAdapter, sql, type ColumnDataType, type Expression, type Kysely, type RawBuilder } from 'kysely'

/**
 * The few SQL fragments that differ between the index's two engines, each written once for both
 * (used by migrations/ and the ingest). Everything else is plain kysely, which quotes identifiers,
 * so camelCase columns (`sortAt`) mean the same on SQLite and PostgreSQL.
 */

/** The engine holding the index: SQLite (one file, the default) or PostgreSQL (INDEX_DATABASE_URL). */
export type Backend = 'sqlite' | 'postgres'

/** The engine behind `db`, from its dialect's adapter. */
export function backendOf(db: Kysely<any>): Backend {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite'
}

/**
 * The type of a text column: `text` on SQLite (compared byte by byte), `text collate "C"` on
 * PostgreSQL, so that ordering and comparisons (feed order, ties by uri, keyset cursors, rev
 * guards) are byte order there too, whatever locale the database was created with, and both
 * engines answer identically.
 */
export function textType(db: Kysely<any>): ColumnDataType | Expression<unknown> {
  return backendOf(db) === 'postgres' ? sql`text collate "C"` : 'text'
}

/**
 * `time` (an ISO 8601 UTC text column or value) plus `seconds`, as ISO 8601 UTC text with
 * milliseconds (`2025-01-02T03:04:05.678Z`, the format the index stores).
 */
export function isoPlusSeconds(db: Kysely<any>, time: Expression<string>, seconds: number): RawBuilder<string> {
  if (backendOf(db) === 'postgres')
    return sql<string>`to_char((${time}::timestamptz + make_interval(secs => ${sql.lit(seconds)})) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
  return sql<string>`strftime('%Y-%m-%dT%H:%M:%fZ', ${time}, ${sql.lit(`+${seconds} seconds`)})`
}

/** The smaller of two values of one type (`min(a, b)` on SQLite, `least(a, b)` on PostgreSQL). */
export function smaller<T>(db: Kysely<any>, a: Expression<T>, b: Expression<T>): RawBuilder<T> {
  return backendOf(db) === 'postgres' ? sql<T>`least(${a}, ${b})` : sql<T>`min(${a}, ${b})`
}

/** A JSON text column's top-level string field `field` (`json_extract` on SQLite, `->>` on PostgreSQL). */
export function jsonText(db: Kysely<any>, column: Expression<string>, field: string): RawBuilder<string | null> {
  return backendOf(db) === 'postgres'
    ? sql<string | null>`(${column}::json ->> ${sql.lit(field)})`
    : sql<string | null>`json_extract(${column}, ${sql.lit(`$.${field}`)})`
}

import type { Kysely } from 'kysely'

/**
 * Scaling out (issue 13): `index_version`, one row (`id` 1) whose `version` the ingest bumps in
 * every transaction that changes what the AppView answers. AppView processes on PostgreSQL keep
 * their response caches until it moves (src/db/version.ts); on a read replica the row arrives with
 * the rows of the same transaction, so a replica's version never runs ahead of its data. (SQLite
 * readers watched `PRAGMA data_version` instead at first; since cursor-only commits stopped
 * bumping the row, they read it when that pragma moves.)
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('index_version')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('version', 'bigint', (c) => c.notNull())
    .execute()
  await (db as Kysely<{ index_version: { id: number; version: number } }>).insertInto('index_version').values({ id: 1, version: 0 }).execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('index_version').execute()
}

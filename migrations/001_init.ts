import { type Kysely, sql } from 'kysely'
import { textType } from '../src/db/sql.js'

/**
 * Initial index schema: actors, items, quarantined records and the firehose cursor. Text columns
 * compare byte by byte on both engines ({@link textType}); `seq` is a bigint (a relay's seqs pass 2^31).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const text = textType(db)
  await db.schema
    .createTable('actor')
    .addColumn('did', text, (c) => c.primaryKey())
    .addColumn('handle', text)
    .addColumn('pds', text)
    .addColumn('trusted', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('status', text)
    .addColumn('updatedAt', text, (c) => c.notNull())
    .execute()
  await db.schema.createIndex('actor_handle').on('actor').column('handle').execute()

  await db.schema
    .createTable('item')
    .addColumn('uri', text, (c) => c.primaryKey())
    .addColumn('did', text, (c) => c.notNull())
    .addColumn('kind', text, (c) => c.notNull())
    .addColumn('rkey', text, (c) => c.notNull())
    .addColumn('cid', text, (c) => c.notNull())
    .addColumn('rev', text, (c) => c.notNull())
    .addColumn('code', text)
    .addColumn('sortAt', text, (c) => c.notNull())
    .addColumn('indexedAt', text, (c) => c.notNull())
    .addColumn('record', text, (c) => c.notNull())
    .execute()
  await sql`create index item_feed on item ("sortAt" desc, uri desc)`.execute(db)
  await sql`create index item_kind_feed on item (kind, "sortAt" desc, uri desc)`.execute(db)
  await sql`create index item_author_feed on item (did, "sortAt" desc, uri desc)`.execute(db)
  await sql`create index item_author_kind_feed on item (did, kind, "sortAt" desc, uri desc)`.execute(db)
  await sql`create index item_code on item (kind, code) where code is not null`.execute(db)

  await db.schema
    .createTable('quarantine')
    .addColumn('uri', text, (c) => c.primaryKey())
    .addColumn('cid', text, (c) => c.notNull())
    .addColumn('did', text, (c) => c.notNull())
    .addColumn('collection', text, (c) => c.notNull())
    .addColumn('reason', text, (c) => c.notNull())
    .addColumn('record', text, (c) => c.notNull())
    .addColumn('firstSeen', text, (c) => c.notNull())
    .addColumn('lastSeen', text, (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('cursor')
    .addColumn('service', text, (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('eventTime', text)
    .addColumn('updatedAt', text, (c) => c.notNull())
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['cursor', 'quarantine', 'item', 'actor']) await db.schema.dropTable(t).execute()
}

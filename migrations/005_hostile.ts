import { type Kysely, sql } from 'kysely'
import { isoPlusSeconds } from '../src/db/sql.js'
import { serviceId } from '../src/redact.js'

/**
 * A hostile network (issue 15):
 * - `item.hidden`: 1 while the author's account is hidden (taken down, suspended, deactivated),
 *   copied from `actor.status` by the ingest; the site-wide feed indexes lead with it, so a feed
 *   page reads visible items only, however many rows hidden actors have (10,000 items of a
 *   deactivated account used to be scanned on every uncached getFeed). The author feed indexes
 *   need no such column: a hidden actor's feed is never served;
 * - `sortAt` is clamped to `indexedAt` plus 5 minutes, as the ingest now writes it, so records
 *   dated in the future stop sitting on top of the feeds;
 * - firehose hosts are now keyed by their URL without credentials (`serviceId`): stored keys
 *   that held some are rewritten, so their cursors carry on and no credential stays in the index.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('item')
    .addColumn('hidden', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
  await sql`update item set hidden = 1 where did in (select did from actor where status is not null)`.execute(db)
  const latest = isoPlusSeconds(db, sql.ref('indexedAt'), 300)
  await sql`update item set "sortAt" = ${latest} where "sortAt" > ${latest}`.execute(db)
  for (const [name, key] of FEED_INDEXES) {
    await sql`drop index ${sql.id(name)}`.execute(db)
    await sql`create index ${sql.id(name)} on item (hidden, ${sql.raw(key)}, ${sql.raw(COVERED)})`.execute(db)
  }
  const { rows } = await sql<{ service: string }>`select service from cursor union select source from backfill union select distinct source from repo`.execute(
    db,
  )
  for (const { service } of rows.filter((r) => r.service.includes('@'))) {
    const id = serviceId(service)
    await sql`update cursor set service = ${id} where service = ${service}`.execute(db)
    await sql`update backfill set source = ${id} where source = ${service}`.execute(db)
    await sql`update repo set source = ${id} where source = ${service}`.execute(db)
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const [name, key] of FEED_INDEXES) {
    await sql`drop index ${sql.id(name)}`.execute(db)
    await sql`create index ${sql.id(name)} on item (${sql.raw(key)}, ${sql.raw(COVERED)})`.execute(db)
  }
  await db.schema.alterTable('item').dropColumn('hidden').execute()
}

/** The site-wide feed indexes of 003 and their keys. */
const FEED_INDEXES = [
  ['item_feed', '"sortAt" desc, uri desc'],
  ['item_kind_feed', 'kind, "sortAt" desc, uri desc'],
] as const

/** Columns a feed page reads besides the key, as in 003. */
const COVERED = 'did, kind, cid, "indexedAt"'

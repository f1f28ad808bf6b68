import type { Kysely } from 'kysely'

/**
 * Feed pages without records (issue 12): `item.view`, each item's list view as the ingest built
 * it (src/item-view.ts, `storedView`: the view's JSON without `indexedAt` and `author`, which are
 * joined from the rows when a page is read), and `item.viewKey`, what it was built from besides
 * the record (`viewStamp`: the view configuration's key and the author's PDS). Both null until the
 * ingest fills them: it builds the view of every record it writes, and at start (and when an
 * actor's PDS changes) rebuilds every view whose key is not its own (`refreshViews`,
 * src/db/views.ts). The AppView builds the views of rows whose key is not its own from their
 * records, as before, so an index migrated but not yet refreshed answers the same, only slower.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('item').addColumn('view', 'text').execute()
  await db.schema.alterTable('item').addColumn('viewKey', 'text').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('item').dropColumn('viewKey').execute()
  await db.schema.alterTable('item').dropColumn('view').execute()
}

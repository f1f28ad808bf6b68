import { type Kysely, sql } from 'kysely'
import { backendOf, jsonText, textType } from '../src/db/sql.js'

/**
 * Posts about AC (issue 10): the feed generator's index.
 * - `post`: `app.bsky.feed.post` records that point at AC (`about` = 1), or that carry an image
 *   or video and were written by an account the ingest saw on TRUSTED_PDS (`media`); newest
 *   first by `sortAt` (the post's `createdAt`, never later than when the host sequenced it);
 * - `post_ref`: what each post points at: an AC item by code (`#`, `$`, `!`, news), by painting
 *   slug or by mood rkey; `sortAt` and `did` are the post's, so a kind's feed is read from the
 *   covering index `post_ref_feed` alone;
 * - `item.slug`: the slug AC's URLs name an item by (a painting's image slug: its record's `slug`
 *   without a `:recording` part; set by the indexer, filled here for paintings already indexed),
 *   and the indexes `item_slug` and `item_kind_rkey`, so a painting URL (`painting~@h/slug`) and a
 *   mood URL (`moods~h~rkey`) find their item with one index lookup.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const text = textType(db)
  await db.schema
    .createTable('post')
    .addColumn('uri', text, (c) => c.primaryKey())
    .addColumn('did', text, (c) => c.notNull())
    .addColumn('cid', text, (c) => c.notNull())
    .addColumn('rev', text, (c) => c.notNull())
    .addColumn('sortAt', text, (c) => c.notNull())
    .addColumn('indexedAt', text, (c) => c.notNull())
    .addColumn('about', 'integer', (c) => c.notNull())
    .addColumn('media', text)
    .execute()
  await sql`create index post_about_feed on post (about, "sortAt" desc, uri desc, did)`.execute(db)
  await sql`create index post_feed on post ("sortAt" desc, uri desc, did)`.execute(db)
  await sql`create index post_author on post (did)`.execute(db)

  await db.schema
    .createTable('post_ref')
    .addColumn('post', text, (c) => c.notNull())
    .addColumn('kind', text, (c) => c.notNull())
    .addColumn('via', text, (c) => c.notNull())
    .addColumn('key', text, (c) => c.notNull())
    .addColumn('sortAt', text, (c) => c.notNull())
    .addColumn('did', text, (c) => c.notNull())
    .addPrimaryKeyConstraint('post_ref_pk', ['post', 'kind', 'via', 'key'])
    .execute()
  await sql`create index post_ref_feed on post_ref (kind, "sortAt" desc, post desc, did, via, key)`.execute(db)

  await db.schema.alterTable('item').addColumn('slug', text).execute()
  const slug = jsonText(db, sql.ref('record'), 'slug')
  const imageSlug = backendOf(db) === 'postgres' ? sql`split_part(${slug}, ':', 1)` : sql`substr(${slug}, 1, instr(${slug} || ':', ':') - 1)`
  await sql`update item set slug = ${imageSlug} where kind = 'painting'`.execute(db)
  await sql`create index item_slug on item (kind, slug, "sortAt", uri)`.execute(db)
  await sql`create index item_kind_rkey on item (kind, rkey, "sortAt", uri)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index item_kind_rkey`.execute(db)
  await sql`drop index item_slug`.execute(db)
  await db.schema.alterTable('item').dropColumn('slug').execute()
  await db.schema.dropTable('post_ref').execute()
  await db.schema.dropTable('post').execute()
}

import { sql, type Kysely } from 'kysely'
import { StoredViews, viewStamp } from '../item-view.js'
import type { IndexSchema } from './index.js'
import { bumpVersion } from './store.js'

/** Rows rebuilt per statement batch by {@link refreshViews}. */
const REFRESH_BATCH = 500

/**
 * SQL (over `item` joined with `actor`): `item.viewKey` is not what a view built now under the
 * configuration whose key starts `prefix` (the key and a space) would be stamped with the
 * author's current PDS ({@link viewStamp}). The ingest rebuilds such views; the AppView serves
 * only the others (src/appview/views.ts, which compares the same stamp in JavaScript).
 */
export function staleView(prefix: unknown) {
  return sql<boolean>`(item."viewKey" is null or item."viewKey" <> cast(${prefix} as text) || coalesce(actor.pds, ''))`
}

/**
 * Rebuilds the stored views (`item.view`, `item.viewKey`, migration 007) that do not match
 * `views`' configuration and their author's current PDS: every item's, or `did`'s only. The
 * ingest runs it at start (in batches: `limit` rows per call; call again while it returns
 * `limit`) and, in the same transaction, whenever an actor's PDS may have changed, so a stored
 * view never names a PDS the actor row no longer holds. A record that cannot be viewed (never
 * the case for a record that passed its lexicon) keeps a null view, which the AppView builds
 * itself.
 * @returns how many rows were looked at (rebuilt or left null), at most `limit`.
 */
export async function refreshViews(
  db: Kysely<IndexSchema>,
  views: StoredViews,
  opts: { did?: string; limit?: number; after?: string } = {},
): Promise<{ rows: number; last?: string }> {
  let query = db
    .selectFrom('item')
    .leftJoin('actor', 'actor.did', 'item.did')
    .select(['item.uri', 'item.cid', 'item.did', 'item.kind', 'item.record', 'actor.pds'])
    .where(staleView(`${views.key} `))
    .orderBy('item.uri')
    .limit(opts.limit ?? REFRESH_BATCH)
  if (opts.did) query = query.where('item.did', '=', opts.did)
  if (opts.after) query = query.where('item.uri', '>', opts.after)
  const rows = await query.execute()
  for (const row of rows) {
    let built: { view: string | null; viewKey: string }
    try {
      built = views.build(row, row.record, row.pds)
    } catch {
      built = { view: null, viewKey: viewStamp(views.key, row.pds) }
    }
    await db.updateTable('item').set(built).where('uri', '=', row.uri).execute()
  }
  return { rows: rows.length, last: rows.at(-1)?.uri }
}

/**
 * Rebuilds every stale stored view under `views` ({@link refreshViews}), one transaction per
 * batch, then bumps the index version once if any was: for an index no ingest is writing
 * (benchmarks, tools).
 * @returns the rows rebuilt.
 */
export async function refreshAllViews(db: Kysely<IndexSchema>, views: StoredViews): Promise<number> {
  let total = 0
  for (let after: string | undefined; ;) {
    const batch = await db.transaction().execute((trx) => refreshViews(trx, views, { after }))
    total += batch.rows
    if (!batch.last) break
    after = batch.last
  }
  if (total > 0) await bumpVersion(db)
  return total
}

import type { FeedPosition } from '../appview/cursor.js'
import type { FeedDefinition } from './definitions.js'
import type { FeedReader } from './reader.js'

/** One entry of `app.bsky.feed.getFeedSkeleton`'s `feed`: a post, and for kind feeds the item it shows. */
export interface SkeletonItem {
  post: string
  feedContext?: string
}

/** A skeleton page and the position to continue from (absent at the end of the feed). */
export interface SkeletonPage {
  feed: SkeletonItem[]
  next?: FeedPosition
}

/**
 * Posts examined at most per request of a kind feed. Posts whose links resolve to no visible
 * trusted item are skipped; past this many, the page ends early (with a cursor), so a flood of
 * links to unknown codes cannot make one request scan the whole index.
 */
const SCAN_BUDGET = 2000

/**
 * One page of `def`'s feed after `after`: at most `limit` posts, newest first; `next` is the
 * last post served when more may follow. Keyset pagination on (sortAt, uri), so a walk to the
 * end never skips or repeats a post while new ones are indexed.
 */
export async function skeletonPage(reader: FeedReader, def: FeedDefinition, limit: number, after?: FeedPosition): Promise<SkeletonPage> {
  if (def.select.posts === 'kind') return kindPage(reader, def.select.kind, limit, after)
  const rows = await reader.posts(def.select.posts, limit + 1, after)
  const feed = rows.slice(0, limit).map((r) => ({ post: r.uri }))
  return { feed, next: rows.length > limit ? position(rows[limit - 1]) : undefined }
}

/**
 * A page of a kind's feed: posts in order, each kept when it is joined to a visible item of the
 * kind (whose AT-URI becomes the `feedContext`), read in chunks until the page is full, the posts
 * run out, or {@link SCAN_BUDGET} posts were examined.
 */
async function kindPage(reader: FeedReader, kind: string, limit: number, after?: FeedPosition): Promise<SkeletonPage> {
  const kept: Array<{ item: SkeletonItem; at: FeedPosition }> = []
  const chunk = Math.max(limit + 1, 32)
  let cursor = after
  let scanned = 0
  for (;;) {
    const rows = await reader.kindPosts(kind, chunk, cursor)
    for (const row of rows) {
      cursor = position(row)
      if (row.item) kept.push({ item: { post: row.uri, feedContext: row.item }, at: cursor })
      if (kept.length > limit) return { feed: kept.slice(0, limit).map((k) => k.item), next: kept[limit - 1].at }
      if (++scanned >= SCAN_BUDGET) return { feed: kept.map((k) => k.item), next: cursor }
    }
    if (rows.length < chunk) return { feed: kept.map((k) => k.item) }
  }
}

function position(row: { uri: string; sortAt: string }): FeedPosition {
  return { sortAt: row.sortAt, uri: row.uri }
}

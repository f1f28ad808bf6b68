import type { Kind } from '../collections/index.js'

/**
 * Which posts a feed shows, newest first, from visible authors only (the index's posts; see
 * src/ingest/posts.ts):
 * - `about`: every post that points at AC;
 * - `kind`: posts joined to an indexed, visible item of that kind (a code, painting slug or mood
 *   rkey resolved by code authority: trusted repos only, earliest `when` first), each with that
 *   item's AT-URI as its `feedContext`;
 * - `artists`: posts with an image, video or AC link by accounts on TRUSTED_PDS.
 */
export type FeedSelection = { posts: 'about' } | { posts: 'kind'; kind: Kind } | { posts: 'artists' }

/** One feed: its `app.bsky.feed.generator` record and what it selects. */
export interface FeedDefinition {
  /** Record key of the generator record; the last part of the feed's AT-URI. */
  rkey: string
  /** `displayName` of the record: at most 24 graphemes (app.bsky.feed.generator). */
  displayName: string
  /** `description`: at most 300 graphemes. */
  description: string
  /** The avatar's two colours (CSS hex); the pattern comes from the rkey (src/feeds/avatar.ts). */
  colors: [string, string]
  select: FeedSelection
}

/**
 * AC's feeds, the one place they are defined: the AppView serves their skeletons
 * (`app.bsky.feed.getFeedSkeleton`) and `ac-appview feeds publish` writes their records.
 */
export const FEEDS: readonly FeedDefinition[] = [
  {
    rkey: 'ac-all',
    displayName: 'Aesthetic Computer',
    description:
      'Every post about Aesthetic Computer (aesthetic.computer): paintings, KidLisp, tapes, moods and news linked from anywhere on the network, newest first.',
    colors: ['#ff3399', '#14121f'],
    select: { posts: 'about' },
  },
  {
    rkey: 'ac-paintings',
    displayName: 'AC paintings',
    description: 'Posts that link a painting made on Aesthetic Computer (#code or painting~@handle/slug), newest first.',
    colors: ['#ffcc00', '#1f3aff'],
    select: { posts: 'kind', kind: 'painting' },
  },
  {
    rkey: 'ac-kidlisp',
    displayName: 'AC KidLisp',
    description: 'Posts that link a KidLisp program on Aesthetic Computer ($code), newest first.',
    colors: ['#33dd77', '#101010'],
    select: { posts: 'kind', kind: 'kidlisp' },
  },
  {
    rkey: 'ac-tapes',
    displayName: 'AC tapes',
    description: 'Posts that link a tape (a recording) made on Aesthetic Computer (!code), newest first.',
    colors: ['#ff5522', '#fff4e0'],
    select: { posts: 'kind', kind: 'tape' },
  },
  {
    rkey: 'ac-moods',
    displayName: 'AC moods',
    description: 'Moods of Aesthetic Computer users, as AC mirrors them to Bluesky and as people link them, newest first.',
    colors: ['#8866ff', '#e8f0ff'],
    select: { posts: 'kind', kind: 'mood' },
  },
  {
    rkey: 'ac-artists',
    displayName: 'AC artists',
    description: 'Images, videos and Aesthetic Computer links posted by AC users (accounts hosted on AC\u2019s PDS), newest first.',
    colors: ['#00ccee', '#2a0033'],
    select: { posts: 'artists' },
  },
]

/** The NSID of feed generator records. */
export const FEED_GENERATOR_COLLECTION = 'app.bsky.feed.generator'

/** Bluesky's post collection: what the feeds list, and what `writer share` writes. */
export const POST_COLLECTION = 'app.bsky.feed.post'

/** A feed's AT-URI: `at://<publisher DID>/app.bsky.feed.generator/<rkey>`. */
export function feedUri(publisherDid: string, def: FeedDefinition): string {
  return `at://${publisherDid}/${FEED_GENERATOR_COLLECTION}/${def.rkey}`
}

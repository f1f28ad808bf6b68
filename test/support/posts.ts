import { RichText, lexicons as bskyLexicons, type AtpAgent } from '@atproto/api'
import { XrpcClient } from '@atproto/xrpc'
import { FEEDS, feedUri } from '../../src/feeds/definitions.js'

/** An account that can write to its repo. */
export interface Poster {
  did: string
  agent: AtpAgent
}

/** How a test post carries its text and links. */
export interface PostSpec {
  text: string
  /** Make link facets for the URLs in the text, as Bluesky's clients do (default true). */
  facets?: boolean
  /** An external embed (link card) to this URL. */
  external?: string
  /** An image embed of these PNG bytes. */
  image?: Buffer
  createdAt?: string
}

/**
 * Creates an `app.bsky.feed.post` in the poster's repo (validated by the PDS, which knows
 * Bluesky's lexicons). Resolves to its uri and cid.
 */
export async function createPost(poster: Poster, spec: PostSpec): Promise<{ uri: string; cid: string }> {
  const rt = new RichText({ text: spec.text })
  if (spec.facets !== false) rt.detectFacetsWithoutResolution()
  const record: Record<string, unknown> = { $type: 'app.bsky.feed.post', text: rt.text, createdAt: spec.createdAt ?? new Date().toISOString() }
  const links = rt.facets?.filter((f) => f.features.every((x) => x.$type === 'app.bsky.richtext.facet#link'))
  if (links?.length) record.facets = links
  if (spec.external)
    record.embed = { $type: 'app.bsky.embed.external', external: { uri: spec.external, title: 'Aesthetic Computer', description: 'a link card' } }
  if (spec.image) {
    const blob = (await poster.agent.com.atproto.repo.uploadBlob(spec.image, { encoding: 'image/png' })).data.blob
    record.embed = { $type: 'app.bsky.embed.images', images: [{ image: blob, alt: 'a test image', aspectRatio: { width: 16, height: 16 } }] }
  }
  const res = await poster.agent.com.atproto.repo.createRecord({ repo: poster.did, collection: 'app.bsky.feed.post', record })
  return { uri: res.data.uri, cid: res.data.cid }
}

/** Deletes a post by its uri. */
export async function deletePost(poster: Poster, uri: string): Promise<void> {
  await poster.agent.com.atproto.repo.deleteRecord({ repo: poster.did, collection: 'app.bsky.feed.post', rkey: uri.split('/').pop()! })
}

/**
 * The feed generator's skeletons over real HTTP through `@atproto/xrpc` with Bluesky's lexicons
 * (`@atproto/api`): every answer is validated against `app.bsky.feed.getFeedSkeleton`'s output.
 */
export function skeletonClient(url: string, publisherDid: string) {
  const client = new XrpcClient(url, bskyLexicons)
  const uriOf = (rkey: string) =>
    feedUri(
      publisherDid,
      FEEDS.find((f) => f.rkey === rkey)!,
    )
  return {
    uriOf,
    async page(rkey: string, params: { limit?: number; cursor?: string } = {}, headers: Record<string, string> = {}) {
      const res = await client.call('app.bsky.feed.getFeedSkeleton', { feed: uriOf(rkey), ...params }, undefined, { headers })
      bskyLexicons.assertValidXrpcOutput('app.bsky.feed.getFeedSkeleton', res.data)
      return res.data as { feed: Array<{ post: string; feedContext?: string }>; cursor?: string }
    },
    /** Every post of a feed, walking its pages of `limit`. */
    async all(rkey: string, limit = 100) {
      const out: Array<{ post: string; feedContext?: string }> = []
      let cursor: string | undefined
      do {
        const page = await this.page(rkey, { limit, cursor })
        out.push(...page.feed)
        cursor = page.cursor
      } while (cursor)
      return out
    },
  }
}

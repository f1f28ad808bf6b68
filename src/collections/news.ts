import { z } from 'zod'
import type { MirroredCollection } from './types.js'
import { NotReady } from './types.js'

/** AC's news codes: `n` and 3 or more characters of its alphabet (older posts were renamed to carry the `n`). */
const NEWS_CODE = /^n[a-z0-9]{3,9}$/

const fields = z.object({
  code: z.string().regex(NEWS_CODE, 'is not a news code (n and 3-9 letters or digits)'),
  title: z.string().trim().min(1, 'is empty').max(300),
  url: z.string().optional(),
  text: z.string().optional(),
  status: z.enum(['live', 'dead', 'pending-toll']),
})
type Fields = z.infer<typeof fields>

/** `https://news.aesthetic.computer/<code>`: the news board lives on a subdomain of AC's site. */
function newsPermalink(publicUrl: string, code: string): string {
  const site = new URL(publicUrl)
  return `${site.protocol}//news.${site.host}/${code}`
}

/** `url` when it is a URL with one of `protocols`, else undefined. */
function urlWith(url: unknown, protocols: string[]): string | undefined {
  if (typeof url !== 'string' || !url) return undefined
  try {
    return protocols.includes(new URL(url).protocol) ? url : undefined
  } catch {
    return undefined
  }
}

/**
 * `computer.aesthetic.news`: AC's `news-posts`, written to the poster's own repo as AC does
 * (title → headline, text → body and url → link when not empty, `when`, `_id` → ref; no tags).
 * `status: "dead"` is AC's delete; `pending-toll` posts wait for their toll; posts pulled from
 * Bluesky (`user: null`, their `atproto` names the `app.bsky.feed.post`) are not AC's to mirror.
 */
export const news: MirroredCollection<Fields> = {
  kind: 'news',
  nsid: 'computer.aesthetic.news',
  mongo: 'news-posts',
  mirrors: (doc) => typeof doc.user === 'string',
  backrefFields: ['atproto'],
  anonymous: false,
  fieldsSchema: fields,
  isLive: (doc) => doc.status !== 'dead',
  async toRecord(item, ctx) {
    const { code, title, url, text, status } = item.fields
    if (status === 'pending-toll') throw new NotReady('waiting for its toll (status pending-toll)')
    return {
      $type: this.nsid,
      headline: title,
      ...(text?.trim() ? { body: text } : {}),
      ...(urlWith(url, ['http:', 'https:']) ? { link: url } : {}), // a `url` that is no web address is left out
      acUrl: newsPermalink(ctx.publicUrl, code),
      when: item.when.toISOString(),
      ref: item.id,
    }
  },
  blobs: [],
  normalize: (record) => record,
  // News links point anywhere on the web: served when https (never javascript:, data: or plain http).
  view: (_did, r) => ({ headline: r.headline, body: r.body, link: urlWith(r.link, ['https:']), acUrl: urlWith(r.acUrl, ['https:']) }),
  longText: 'body',
  synthetic: {
    count: 400,
    record: (n, s) => ({
      ...s.base,
      headline: `news ${n}: a new piece`,
      ...(n % 2 ? { body: 'a few words about it '.repeat(1 + (n % 20)) } : {}),
      ...(n % 3 ? { link: `https://example.com/${n}` } : {}),
      acUrl: `https://news.aesthetic.computer/n${n.toString(36)}`,
    }),
  },
}

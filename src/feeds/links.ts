import { isValidRecordKey } from '@atproto/syntax'
import { PREFIXED_CODE, byCodePrefix } from '../collections/index.js'

/**
 * What a link to AC points at. Items are named the ways AC's URLs name them: by short code
 * (`#abc` painting, `$abc` KidLisp, `!abc` tape, a news code), by a painting's image slug
 * (`painting~@handle/slug`) or by a mood's rkey (`moods~handle~rkey`). `site` is AC with no item
 * (a piece, the home page, a paper…).
 */
export type AcTarget =
  | { kind: 'painting' | 'kidlisp' | 'tape' | 'news'; via: 'code'; key: string }
  | { kind: 'painting'; via: 'slug'; key: string }
  | { kind: 'mood'; via: 'rkey'; key: string }
  | { kind: 'site' }

/** AC's hosts, from AC_PUBLIC_URL, and how their URLs are read. */
export interface AcLinks {
  /**
   * Whether `bytes` contain AC's host name (or a subdomain's), ignoring case: a scan of raw
   * bytes (a commit's CAR), before anything is decoded. False means no record in them links AC.
   */
  mentioned(bytes: Uint8Array): boolean
  /** What `url` points at on AC; null when it is not an http(s) URL of AC's host or a subdomain. */
  target(url: string): AcTarget | null
}

/** AC's route to a painting's PNG (or recording ZIP) by code (docs/data-model.md, "Media"). */
const MEDIA_ROUTE = /^media\/paintings\/([A-Za-z0-9]{1,10})\.(png|zip)$/
/** `painting~@handle/slug`: AC's painting URL; the `@` may be missing. */
const PAINTING_ROUTE = /^painting~@?[^/~]+\/(.{1,128})$/
/** `moods~handle~rkey`: AC's mood URL (how AC's moods mirrored to Bluesky link back). */
const MOOD_ROUTE = /^moods~@?[^/~]+~([^/~]+)$/
/** A news code: `https://news.aesthetic.computer/<code>` (`n` and three characters today). */
const NEWS_ROUTE = /^([A-Za-z0-9]{1,10})$/

/**
 * AC's URL forms for the site at `publicUrl` (AC_PUBLIC_URL, e.g. `https://aesthetic.computer`),
 * as docs/data-model.md lists them. Every subdomain counts as AC (`news.`, `papers.`, the PDS);
 * `www.` is the site itself. On the site, the path (percent-decoded, so `%23abc` is `#abc`) or
 * the fragment (`/#abc`) names the item:
 * - `#abc`, `$abc`, `!abc` → painting, KidLisp, tape by code (the sigil raw or percent-encoded);
 * - `painting~@handle/slug` → painting by image slug (the part before a `:recording` suffix);
 * - `moods~handle~rkey` → mood by rkey;
 * - `media/paintings/abc.png` (or `.zip`) → painting by code;
 * - anything else → `site`.
 * On `news.<host>`, `/<code>` is a news post; elsewhere any path is `site`. The handle in
 * painting and mood URLs is AC's handle, which the index does not hold (a PDS handle is derived
 * from it but may fall back to the user code): the slug and rkey identify the item.
 */
export function acLinks(publicUrl: string): AcLinks {
  const host = new URL(publicUrl).hostname.toLowerCase()
  const hostPattern = new RegExp(host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i')
  return {
    mentioned: (bytes) => hostPattern.test(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')),
    target(url) {
      let parsed: URL
      try {
        parsed = new URL(url)
      } catch {
        return null
      }
      const h = parsed.hostname
      if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || (h !== host && !h.endsWith(`.${host}`))) return null
      const path = decoded(parsed.pathname.replace(/^\/+|\/+$/g, ''))
      if (h === `news.${host}`) {
        const news = path === undefined ? null : NEWS_ROUTE.exec(path)
        return news ? { kind: 'news', via: 'code', key: news[1] } : { kind: 'site' }
      }
      if (h !== host && h !== `www.${host}`) return { kind: 'site' }
      return siteTarget(path === '' ? decoded(parsed.hash) : path)
    },
  }
}

/** The item a decoded site path (or fragment) names, else `site`. */
function siteTarget(path: string | undefined): AcTarget {
  if (path === undefined) return { kind: 'site' }
  const code = PREFIXED_CODE.exec(path)
  if (code) return { kind: byCodePrefix.get(code[1])!.kind as 'painting' | 'kidlisp' | 'tape', via: 'code', key: code[2] }
  const media = MEDIA_ROUTE.exec(path)
  if (media) return { kind: 'painting', via: 'code', key: media[1] }
  const painting = PAINTING_ROUTE.exec(path)
  if (painting) return { kind: 'painting', via: 'slug', key: painting[1].split(':')[0] }
  const mood = MOOD_ROUTE.exec(path)
  if (mood && isValidRecordKey(mood[1])) return { kind: 'mood', via: 'rkey', key: mood[1] }
  return { kind: 'site' }
}

/** Percent-decoded text, or undefined when the encoding is malformed (`%E0%A4%A`). */
function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

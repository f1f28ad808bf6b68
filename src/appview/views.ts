import { LRUCache } from 'lru-cache'
import { byKind, type Kind, type ViewContext } from '../collections/index.js'
import { acOrigins } from '../config.js'
import { originMatcher } from './http.js'
import { viewMetrics } from './metrics.js'
import type { FeedRow, StoredRecord } from './read-model.js'

export interface ViewOptions {
  /** AC's public site, for permalinks (AC_PUBLIC_URL without a trailing slash). */
  publicUrl: string
  /** `{did}` and `{cid}` are replaced; unset means the author's PDS `getBlob`. */
  blobCdnTemplate?: string
  /**
   * Origins whose https URLs a record may carry into a view (VIEW_URL_ORIGINS: exact,
   * `https://*.host` or `*`); default AC's site and its subdomains.
   */
  viewUrlOrigins?: string[]
}

/**
 * `list`: in feeds, the kind's long text (KidLisp `source`, `mood`) is cut to
 * {@link LIST_TEXT_MAX_BYTES} and the view says `truncated: true`; `whole`: everything
 * (resolveCode, a profile's latest mood).
 */
export type ViewMode = 'list' | 'whole'

/**
 * Longest text of one item in a list, in UTF-8 bytes (cut between graphemes). A feed page of 100
 * KidLisp records at the lexicon's limit (200,000 bytes each) was 20 MB; AC's snippets are
 * almost all shorter than this.
 */
export const LIST_TEXT_MAX_BYTES = 2048

/** A view serialised: its JSON in UTF-8, joined into answers as it is (no re-encoding per request). */
export type ViewJson = Buffer

/** A record URL is served only when https on an allowed origin (issue 15: `javascript:` and `data:` were served as they came). */
function recordUrlFilter(origins: string[]): ViewContext['recordUrl'] {
  const allowed = originMatcher(origins)
  return (field, value) => {
    if (value === undefined) return undefined
    const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined
    if (url?.protocol === 'https:' && allowed(url.origin)) return value as string
    viewMetrics.urlsDropped.inc({ field })
    return undefined
  }
}

/**
 * `computer.aesthetic.media.defs#itemView` for one row and its stored record: the common fields
 * plus the kind's own (`view()` of src/collections/<kind>.ts). Absent optional fields are left
 * out; `author.handle` is the handle the index holds (verified, kept current by identity events).
 * In `list` mode the kind's long text is cut ({@link ViewMode}).
 */
export function itemView(row: FeedRow, record: Record<string, unknown>, ctx: ViewContext, mode: ViewMode): Record<string, unknown> {
  const view: Record<string, unknown> = {
    uri: row.uri,
    cid: row.cid,
    kind: row.kind,
    author: row.handle ? { did: row.did, handle: row.handle } : { did: row.did },
    when: record.when,
    indexedAt: row.indexedAt,
  }
  const col = byKind.get(row.kind as Kind)!
  for (const [k, v] of Object.entries(col.view(row.did, record, ctx))) if (v !== undefined) view[k] = v
  const text = col.longText && view[col.longText]
  if (mode === 'list' && typeof text === 'string') {
    const cut = cutUtf8(text, LIST_TEXT_MAX_BYTES)
    if (cut !== text) Object.assign(view, { [col.longText!]: cut, truncated: true })
  }
  return view
}

/** `text` cut to at most `maxBytes` of UTF-8, between graphemes (an emoji sequence is never split). */
export function cutUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text
  let bytes = 0
  let end = 0
  for (const { segment } of new Intl.Segmenter().segment(text.slice(0, maxBytes))) {
    bytes += Buffer.byteLength(segment)
    if (bytes > maxBytes) break
    end += segment.length
  }
  return text.slice(0, end)
}

/**
 * URL of a blob: BLOB_CDN_TEMPLATE with `{did}` and `{cid}` filled in, else the author's PDS
 * `com.atproto.sync.getBlob` (docs/contract.md, XRPC methods); undefined when the author's PDS is unknown.
 */
export function blobUrl(did: string, cid: string, pds: string | null, template?: string): string | undefined {
  if (template) return template.replaceAll('{did}', encodeURIComponent(did)).replaceAll('{cid}', encodeURIComponent(cid))
  if (!pds) return undefined
  return `${pds}/xrpc/com.atproto.sync.getBlob?did=${encodeURIComponent(did)}&cid=${encodeURIComponent(cid)}`
}

interface CachedView {
  /** What the views were built from: any change (record, handle, PDS, re-creation) rebuilds them. */
  stamp: string
  list?: ViewJson
  /** The same buffer as `list` when nothing was cut. */
  whole?: ViewJson
}

/** Bytes counted per cache entry besides its JSON (key, stamp, bookkeeping). */
const ENTRY_OVERHEAD_BYTES = 256

/** Memory held by a cached entry: its JSON bytes, counted once when both modes share them, plus overhead. */
function entrySize(v: CachedView): number {
  return (v.list?.length ?? 0) + (v.whole && v.whole !== v.list ? v.whole.length : 0) + v.stamp.length + ENTRY_OVERHEAD_BYTES
}

/**
 * Item views serialised to JSON, least recently used dropped past `maxEntries` entries or
 * `maxBytes` of JSON (issue 15: views of 200 KB records could fill the heap). Requests then
 * neither parse stored records nor serialise views: a page is the cached strings joined. An
 * entry is valid while the row's cid, indexedAt, handle and PDS are those it was built from.
 */
export class ViewCache {
  private readonly entries?: LRUCache<string, CachedView>
  private readonly ctx: (row: FeedRow) => ViewContext

  /**
   * @param load the stored records of uris (`ReadModel.records`: one round trip for a page); deleted ones missing
   * @param maxEntries views kept; 0 disables caching
   * @param maxBytes JSON kept, in UTF-8 bytes (plus a small overhead per entry); 0 disables caching
   */
  constructor(
    opts: ViewOptions,
    private readonly load: (uris: string[]) => Promise<Map<string, StoredRecord>>,
    maxEntries: number,
    maxBytes: number,
  ) {
    if (maxEntries > 0 && maxBytes > 0) this.entries = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation: entrySize })
    const recordUrl = recordUrlFilter(opts.viewUrlOrigins ?? acOrigins(opts.publicUrl))
    this.ctx = (row) => ({ publicUrl: opts.publicUrl, recordUrl, blobUrl: (did, cid) => blobUrl(did, cid, row.pds, opts.blobCdnTemplate) })
  }

  /**
   * The views of `rows` in `mode`, in order; undefined for an item deleted since its row was
   * read. Views not cached are built from their stored records, loaded together.
   */
  async views(rows: FeedRow[], mode: ViewMode): Promise<Array<ViewJson | undefined>> {
    const entries = rows.map((row) => {
      const stamp = `${row.cid} ${row.indexedAt} ${row.handle} ${row.pds}`
      const hit = this.entries?.get(row.uri)
      return hit?.stamp === stamp ? hit : { stamp }
    })
    const missing = rows.filter((_, i) => !entries[i][mode])
    const stored = missing.length ? await this.load(missing.map((r) => r.uri)) : undefined
    return rows.map((row, i) => entries[i][mode] ?? this.build(row, entries[i], stored!.get(row.uri), mode))
  }

  /** The view of one row; see {@link views}. */
  async view(row: FeedRow, mode: ViewMode): Promise<ViewJson | undefined> {
    return (await this.views([row], mode))[0]
  }

  /** Builds `row`'s view in `mode` from its stored record into `entry`, and caches the entry when the record is the row's version. */
  private build(row: FeedRow, entry: CachedView, stored: StoredRecord | undefined, mode: ViewMode): ViewJson | undefined {
    if (!stored) return undefined
    const built = itemView({ ...row, cid: stored.cid }, JSON.parse(stored.record), this.ctx(row), mode)
    const view = Buffer.from(JSON.stringify(built))
    entry[mode] = view
    if (mode === 'list' && !built.truncated) entry.whole ??= view
    if (stored.cid === row.cid) this.entries?.set(row.uri, { ...entry })
    return view
  }

  /** Entries held and their size as counted against `maxBytes`. */
  stats(): { entries: number; bytes: number } {
    return { entries: this.entries?.size ?? 0, bytes: this.entries?.calculatedSize ?? 0 }
  }
}

import crypto from 'node:crypto'
import { byKind, type Kind, type ViewContext } from './collections/index.js'
import { acOrigins } from './config.js'
import { originMatcher } from './origins.js'

/**
 * How item views are built (`computer.aesthetic.media.defs#itemView`, docs/contract.md, XRPC
 * methods), shared by the AppView (which builds views of records it has not cached) and the
 * ingest (which keeps each item's list view with its row, so an uncached feed page is built
 * without parsing records: see {@link storedView}).
 */

/** The configuration a view depends on: AC_PUBLIC_URL, BLOB_CDN_TEMPLATE, VIEW_URL_ORIGINS (README, Configuration). */
export interface ViewConfig {
  /** AC's public site, for permalinks (AC_PUBLIC_URL; a trailing slash is ignored). */
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
 * `list`: in feeds, the kind's long text (KidLisp `source`, `mood`, news `body`) is cut to
 * {@link LIST_TEXT_MAX_BYTES} and the view says `truncated: true`; `whole`: everything
 * (resolveCode, a profile's latest mood). docs/contract.md, "Bounded answers".
 */
export type ViewMode = 'list' | 'whole'

/**
 * Longest text of one item in a list, in UTF-8 bytes (cut between graphemes). A feed page of 100
 * KidLisp records at the lexicon's limit (200,000 bytes each) was 20 MB; AC's snippets are
 * almost all shorter than this (docs/contract.md, "Bounded answers").
 */
export const LIST_TEXT_MAX_BYTES = 2048

/** The row fields a view shows besides its record. */
export interface ViewRow {
  uri: string
  cid: string
  did: string
  kind: string
  indexedAt: string
  handle: string | null
}

/**
 * A record URL filter: a URL is served only when https on an allowed origin (docs/contract.md,
 * Items; issue 15: `javascript:` and `data:` were served as they came). `dropped(field)` is told
 * of each URL left out (the AppView counts them in `appview_view_urls_dropped_total`).
 */
export function recordUrlFilter(origins: string[], dropped?: (field: string) => void): ViewContext['recordUrl'] {
  const allowed = originMatcher(origins)
  return (field, value) => {
    if (value === undefined) return undefined
    const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined
    if (url?.protocol === 'https:' && allowed(url.origin)) return value as string
    dropped?.(field)
    return undefined
  }
}

/**
 * `computer.aesthetic.media.defs#itemView` for one row and its stored record: the common fields
 * plus the kind's own (`view()` of src/collections/<kind>.ts). Absent optional fields are left
 * out; `author.handle` is the handle the index holds (verified, kept current by identity events).
 * In `list` mode the kind's long text is cut ({@link ViewMode}).
 */
export function itemView(row: ViewRow, record: Record<string, unknown>, ctx: ViewContext, mode: ViewMode): Record<string, unknown> {
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

/**
 * Version of the stored views' format ({@link storedView}, {@link LIST_TEXT_MAX_BYTES}, the kinds'
 * `view()`): bump it when any of them changes, and stored views stop matching until rebuilt.
 */
export const STORED_VIEW_FORMAT = 1

/**
 * The key of a view configuration: 16 base64url characters of a SHA-256 over
 * {@link STORED_VIEW_FORMAT}, AC_PUBLIC_URL (no trailing slash), the view URL origins (default
 * {@link acOrigins}) and BLOB_CDN_TEMPLATE. A stored view is served only by an AppView whose
 * configuration has the same key ({@link viewStamp}).
 */
export function viewConfigKey(cfg: ViewConfig): string {
  const publicUrl = cfg.publicUrl.replace(/\/+$/, '')
  const material = JSON.stringify([STORED_VIEW_FORMAT, publicUrl, cfg.viewUrlOrigins ?? acOrigins(publicUrl), cfg.blobCdnTemplate ?? null])
  return crypto.hash('sha256', material, 'base64url').slice(0, 16)
}

/**
 * What a stored view was built from besides its record (`item.viewKey`): the configuration's
 * key, a space, and the author's PDS origin (blob URLs name it), empty when unknown. The AppView
 * serves a stored view only when this equals its own key and the PDS the actor row holds now.
 */
export function viewStamp(configKey: string, pds: string | null): string {
  return `${configKey} ${pds ?? ''}`
}

/**
 * Builds stored views ({@link storedView}) under one configuration. URLs a record carries are
 * filtered as the AppView filters them; `dropped(field)` is told of each one left out (the ingest
 * counts them in `ingest_view_urls_dropped_total`, the AppView those it drops itself).
 */
export class StoredViews {
  readonly key: string
  private readonly publicUrl: string
  private readonly recordUrl: ViewContext['recordUrl']

  constructor(
    private readonly cfg: ViewConfig,
    dropped?: (field: string) => void,
  ) {
    this.key = viewConfigKey(cfg)
    this.publicUrl = cfg.publicUrl.replace(/\/+$/, '')
    this.recordUrl = recordUrlFilter(cfg.viewUrlOrigins ?? acOrigins(this.publicUrl), dropped)
  }

  /**
   * `item.view` and `item.viewKey` of an item: see {@link storedView}.
   * @param record the normalised record as lexicon JSON (text, as `item.record` holds it)
   * @param pds the author's PDS origin as the actor row holds it (null when unknown)
   */
  build(row: Pick<ViewRow, 'uri' | 'cid' | 'did' | 'kind'>, record: string, pds: string | null): { view: string; viewKey: string } {
    const ctx: ViewContext = { publicUrl: this.publicUrl, recordUrl: this.recordUrl, blobUrl: (did, cid) => blobUrl(did, cid, pds, this.cfg.blobCdnTemplate) }
    return { view: storedView(itemView({ ...row, indexedAt: '', handle: null }, JSON.parse(record), ctx, 'list')), viewKey: viewStamp(this.key, pds) }
  }
}

/**
 * An item's list view kept with its row (`item.view`): the view's JSON without `indexedAt` and
 * `author` and without its closing brace, e.g. `{"uri":"at://…","cid":"…","kind":"mood","when":"…","mood":"…"`.
 * What can change without the record changing is left out and joined from the rows when a page
 * is read ({@link completeView}, src/appview/views.ts): `indexedAt` (kept from the first version),
 * `author` with the handle the actor row holds now, and whether the actor is hidden (which rows
 * are read at all). What depends on configuration (permalinks, filtered record URLs, blob URLs
 * and the author's PDS) is in, and stamped by {@link viewStamp}.
 */
export function storedView(view: Record<string, unknown>): string {
  const { author: _, indexedAt: __, ...rest } = view
  return JSON.stringify(rest).slice(0, -1)
}

/**
 * A stored view ({@link storedView}) completed with its row's `indexedAt`, the author's DID and
 * the handle the actor row holds now: the item view's JSON, as {@link itemView} would give it in
 * `list` mode (members in another order).
 */
export function completeView(view: string, indexedAt: string, did: string, handle: string | null): string {
  return `${view},"indexedAt":${JSON.stringify(indexedAt)},"author":{"did":${JSON.stringify(did)}${handle ? `,"handle":${JSON.stringify(handle)}` : ''}}}`
}

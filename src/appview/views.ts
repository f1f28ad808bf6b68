import { byKind, type Kind, type ViewContext } from '../collections/index.js'
import type { FeedRow } from './queries.js'

export interface ViewOptions {
  /** AC's public site, for permalinks (AC_PUBLIC_URL without a trailing slash). */
  publicUrl: string
  /** `{did}` and `{cid}` are replaced; unset means the author's PDS `getBlob`. */
  blobCdnTemplate?: string
}

/**
 * `computer.aesthetic.media.defs#itemView` for one row and its stored record: the common fields
 * plus the kind's own (`view()` of src/collections/<kind>.ts). Absent optional fields are left
 * out; `author.handle` is the handle the index holds (verified, kept current by identity events).
 */
export function itemView(row: FeedRow, record: Record<string, unknown>, opts: ViewOptions): Record<string, unknown> {
  const ctx: ViewContext = {
    publicUrl: opts.publicUrl,
    blobUrl: (did, cid) => blobUrl(did, cid, row.pds, opts.blobCdnTemplate),
  }
  const view: Record<string, unknown> = {
    uri: row.uri,
    cid: row.cid,
    kind: row.kind,
    author: row.handle ? { did: row.did, handle: row.handle } : { did: row.did },
    when: record.when,
    indexedAt: row.indexedAt,
  }
  for (const [k, v] of Object.entries(byKind.get(row.kind as Kind)!.view(row.did, record, ctx))) if (v !== undefined) view[k] = v
  return view
}

/**
 * URL of a blob: BLOB_CDN_TEMPLATE with `{did}` and `{cid}` filled in, else the author's PDS
 * `com.atproto.sync.getBlob` (design.md); undefined when the author's PDS is unknown.
 */
export function blobUrl(did: string, cid: string, pds: string | null, template?: string): string | undefined {
  if (template) return template.replaceAll('{did}', encodeURIComponent(did)).replaceAll('{cid}', encodeURIComponent(cid))
  if (!pds) return undefined
  return `${pds}/xrpc/com.atproto.sync.getBlob?did=${encodeURIComponent(did)}&cid=${encodeURIComponent(cid)}`
}

interface CachedView {
  /** What the view was built from: any change (record, handle, PDS, re-creation) rebuilds it. */
  stamp: string
  json: string
}

/**
 * Item views serialised to JSON, least recently used dropped past `maxEntries`. Requests then
 * neither parse stored records nor serialise views: a page is the cached strings joined.
 * An entry is valid while the row's cid, indexedAt, handle and PDS are those it was built from.
 */
export class ViewCache {
  private readonly entries = new Map<string, CachedView>()

  /**
   * @param load the stored record of a uri (`IndexReader.record`), undefined once deleted
   * @param maxEntries views kept; 0 disables caching
   */
  constructor(
    private readonly opts: ViewOptions,
    private readonly load: (uri: string) => { cid: string; record: string } | undefined,
    private readonly maxEntries: number,
  ) {}

  /** The view of `row` as JSON, or undefined when the item was deleted since `row` was read. */
  json(row: FeedRow): string | undefined {
    const stamp = `${row.cid} ${row.indexedAt} ${row.handle} ${row.pds}`
    const hit = this.entries.get(row.uri)
    if (hit?.stamp === stamp) {
      this.entries.delete(row.uri) // re-insert: Map order is the recency order
      this.entries.set(row.uri, hit)
      return hit.json
    }
    const stored = this.load(row.uri)
    if (!stored) return undefined
    const json = JSON.stringify(itemView({ ...row, cid: stored.cid }, JSON.parse(stored.record), this.opts))
    if (this.maxEntries > 0 && stored.cid === row.cid) this.remember(row.uri, { stamp, json })
    return json
  }

  private remember(uri: string, view: CachedView) {
    this.entries.delete(uri)
    this.entries.set(uri, view)
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
  }
}

import { LRUCache } from 'lru-cache'
import type { ViewContext } from '../collections/index.js'
import { acOrigins } from '../config.js'
import { blobUrl, completeView, itemView, recordUrlFilter, viewConfigKey, viewStamp, type ViewConfig, type ViewMode } from '../item-view.js'
import { viewMetrics } from './metrics.js'
import type { FeedRow, StoredRecord, StoredView } from './read-model.js'

export { LIST_TEXT_MAX_BYTES, blobUrl, cutUtf8, itemView, type ViewMode } from '../item-view.js'

/** The view configuration (src/item-view.ts): AC_PUBLIC_URL, BLOB_CDN_TEMPLATE, VIEW_URL_ORIGINS. */
export type ViewOptions = ViewConfig

/** A view serialised: its JSON in UTF-8, joined into answers as it is (no re-encoding per request). */
export type ViewJson = Buffer

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
 * A list view not cached is the view the ingest stored with the row (issue 12, migration 007),
 * completed with the row's `indexedAt` and current handle, when its stamp is this configuration
 * with the author's current PDS ({@link storedKey}); only the others are built from records.
 */
export class ViewCache {
  private readonly entries?: LRUCache<string, CachedView>
  private readonly ctx: (row: FeedRow) => ViewContext
  /** The key of this AppView's view configuration (src/item-view.ts, `viewConfigKey`): stored views stamped with it and the author's current PDS are served. */
  readonly storedKey: string

  /**
   * @param load the stored records of uris (`ReadModel.records`: one round trip for a page); deleted ones missing
   * @param maxEntries views kept; 0 disables caching
   * @param maxBytes JSON kept, in UTF-8 bytes (plus a small overhead per entry); 0 disables caching
   * @param loadViews the stored views of uris (`ReadModel.storedViews`: one round trip for a page); deleted ones missing. Without it every view is built from its record.
   */
  constructor(
    opts: ViewOptions,
    private readonly load: (uris: string[]) => Promise<Map<string, StoredRecord>>,
    maxEntries: number,
    maxBytes: number,
    private readonly loadViews?: (uris: string[]) => Promise<Map<string, StoredView>>,
  ) {
    this.storedKey = viewConfigKey(opts)
    if (maxEntries > 0 && maxBytes > 0) this.entries = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation: entrySize })
    const recordUrl = recordUrlFilter(opts.viewUrlOrigins ?? acOrigins(opts.publicUrl), (field) => viewMetrics.urlsDropped.inc({ field }))
    this.ctx = (row) => ({ publicUrl: opts.publicUrl, recordUrl, blobUrl: (did, cid) => blobUrl(did, cid, row.pds, opts.blobCdnTemplate) })
  }

  /**
   * The views of `rows` in `mode`, in order; undefined for an item deleted since its row was
   * read. List views not cached come from the views stored with the rows, loaded together; the
   * rest are built from their stored records, loaded together.
   */
  async views(rows: FeedRow[], mode: ViewMode): Promise<Array<ViewJson | undefined>> {
    const entries = rows.map((row) => {
      const stamp = `${row.cid} ${row.indexedAt} ${row.handle} ${row.pds}`
      const hit = this.entries?.get(row.uri)
      return hit?.stamp === stamp ? hit : { stamp }
    })
    let missing = rows.flatMap((_, i) => (entries[i][mode] ? [] : [i]))
    if (missing.length && mode === 'list' && this.loadViews) {
      const stored = await this.loadViews(missing.map((i) => rows[i].uri))
      missing = missing.filter((i) => !this.fromStored(rows[i], entries[i], stored.get(rows[i].uri)))
    }
    const records = missing.length ? await this.load(missing.map((i) => rows[i].uri)) : undefined
    return rows.map((row, i) => entries[i][mode] ?? this.build(row, entries[i], records?.get(row.uri), mode))
  }

  /**
   * Sets `entry`'s list view from the view stored with `row` and caches the entry, when that view
   * is of the row's version (cid) and stamped with this configuration and the author's PDS as the
   * row holds it; false otherwise (the caller builds the view from the record).
   */
  private fromStored(row: FeedRow, entry: CachedView, stored: StoredView | undefined): boolean {
    if (!stored?.view || stored.cid !== row.cid || stored.viewKey !== viewStamp(this.storedKey, row.pds)) return false
    entry.list = Buffer.from(completeView(stored.view, row.indexedAt, row.did, row.handle))
    this.entries?.set(row.uri, { ...entry })
    return true
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

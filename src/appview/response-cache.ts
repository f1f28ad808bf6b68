import crypto from 'node:crypto'

/** A successful answer: JSON body and its strong ETag. */
export interface CachedResponse {
  body: string
  etag: string
}

/** Strong ETag of a body: SHA-1, base64url, quoted. */
export function etagOf(body: string): string {
  return `"${crypto.hash('sha1', body, 'base64url')}"`
}

/**
 * Whole answers of the query methods by request (NSID and decoded params), never stale: every
 * entry is dropped as soon as the index changes. `dataVersion` is SQLite's `PRAGMA data_version`
 * of the read connection, which changes whenever another connection (the ingest) commits; reading
 * it costs a microsecond. So between two ingest commits a popular request (a feed's first page, a
 * code AC's frontend resolves on every visit) is answered from memory, ETag included; after a
 * commit it is recomputed once. Least recently used entries are dropped past `maxEntries`.
 */
export class ResponseCache {
  private entries = new Map<string, CachedResponse>()
  private version: number | undefined

  /** @param maxEntries answers kept; 0 disables the cache. */
  constructor(
    private readonly dataVersion: () => number,
    private readonly maxEntries: number,
  ) {}

  /** The answer for `key()`, from the cache or from `build` (whose errors propagate, uncached). */
  get(key: () => string, build: () => string): CachedResponse {
    if (this.maxEntries === 0) return withEtag(build())
    const version = this.dataVersion()
    if (version !== this.version) {
      this.entries = new Map()
      this.version = version
    }
    const k = key()
    const hit = this.entries.get(k)
    if (hit) {
      this.entries.delete(k) // re-insert: Map order is the recency order
      this.entries.set(k, hit)
      return hit
    }
    const response = withEtag(build())
    this.entries.set(k, response)
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
    return response
  }
}

function withEtag(body: string): CachedResponse {
  return { body, etag: etagOf(body) }
}

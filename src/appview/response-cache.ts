import crypto from 'node:crypto'
import { LRUCache } from 'lru-cache'

/** A successful answer: JSON body (UTF-8) and its ETag (strong: the body's SHA-1; weak: its request and index version). */
export interface CachedResponse {
  body: Buffer
  etag: string
}

/** Strong ETag of a body: SHA-1, base64url, quoted. */
export function etagOf(body: string | Buffer): string {
  return `"${crypto.hash('sha1', body, 'base64url')}"`
}

/**
 * Weak ETag of the answer to request `key` at index version `version`, from the AppView whose
 * random `mark` it carries (a new one per start, so a tag never outlives the process's view of
 * the index, e.g. an index rebuilt from scratch counting versions from 0 again). The answer is a
 * function of both (the methods read nothing else that changes, and the version moves only with
 * changes readers can see; only its bytes may differ, e.g. the members of a view built from its
 * record rather than stored with its row, so the tag is weak), and hashing the request (tens of
 * bytes) stands in for hashing the body (a feed page: tens of KB, about 35 µs). On PostgreSQL the
 * version is as notified to this process, so for the moment a notification takes the tag may name
 * the previous version's answer, as the cache itself may.
 */
function versionEtag(mark: string, version: number, key: string): string {
  return `W/"v${mark}.${version}.${crypto.hash('sha1', key, 'base64url')}"`
}

/** Bytes counted per cache entry besides its body and key (ETag, bookkeeping). */
const ENTRY_OVERHEAD_BYTES = 128

/**
 * Whole answers of the query methods by request (NSID and decoded params), never stale: every
 * entry is dropped as soon as the index changes. `dataVersion` is the read model's version
 * (src/db/statements.ts): the `index_version` row, which the ingest bumps with every change
 * readers can see (not with batches that only move its cursor): on SQLite read again when
 * `PRAGMA data_version` of the read connection moves (a microsecond per request); on PostgreSQL
 * as notified to this process (src/db/version.ts), undefined while it cannot be known, and then
 * nothing is cached. So between two ingest commits a popular
 * request (a feed's first page, a code AC's frontend resolves on every visit) is answered from
 * memory, ETag included; after a commit it is recomputed once: concurrent requests for the same
 * answer share one computation, and an answer whose computation overlapped a change of version is
 * served but not kept. Least recently used entries are dropped past `maxEntries` answers or
 * `maxBytes` of bodies and keys (issue 15: answers had no byte bound).
 */
export class ResponseCache {
  private readonly entries?: LRUCache<string, CachedResponse>
  /** Answers being computed, by key, for the current version. */
  private readonly computing = new Map<string, Promise<CachedResponse>>()
  private version: number | undefined
  /** This cache's mark in version ETags (see versionEtag). */
  private readonly mark = crypto.randomBytes(6).toString('base64url')

  /** @param maxEntries answers kept; @param maxBytes bytes kept (UTF-8 bodies and keys); 0 for either disables the cache. */
  constructor(
    private readonly dataVersion: () => number | undefined,
    maxEntries: number,
    maxBytes: number,
  ) {
    if (maxEntries > 0 && maxBytes > 0)
      this.entries = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation: (v, k) => v.body.length + k.length + ENTRY_OVERHEAD_BYTES })
  }

  /**
   * The answer for `key()`, from the cache or from `build` (whose errors propagate, uncached).
   * Without the cache, its ETag names the request and the index version when the version is
   * known and did not change while the answer was built, else the body's SHA-1.
   */
  async get(key: () => string, build: () => Promise<Buffer>): Promise<CachedResponse> {
    if (!this.entries) return this.uncached(key, build)
    const version = this.dataVersion()
    if (version === undefined) return withEtag(await build())
    if (version !== this.version) {
      this.entries.clear()
      this.computing.clear()
      this.version = version
    }
    const k = key()
    const hit = this.entries.get(k) ?? this.computing.get(k)
    if (hit) return hit
    const computed = build().then(withEtag)
    this.computing.set(k, computed)
    try {
      const response = await computed
      if (this.version === version && this.dataVersion() === version) this.entries.set(k, response)
      return response
    } finally {
      if (this.computing.get(k) === computed) this.computing.delete(k)
    }
  }

  private async uncached(key: () => string, build: () => Promise<Buffer>): Promise<CachedResponse> {
    const version = this.dataVersion()
    const body = await build()
    return { body, etag: version !== undefined && this.dataVersion() === version ? versionEtag(this.mark, version, key()) : etagOf(body) }
  }

  /** Answers held and their size as counted against `maxBytes`. */
  stats(): { entries: number; bytes: number } {
    return { entries: this.entries?.size ?? 0, bytes: this.entries?.calculatedSize ?? 0 }
  }
}

function withEtag(body: Buffer): CachedResponse {
  return { body, etag: etagOf(body) }
}

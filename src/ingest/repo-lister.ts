import { collections } from '../collections/index.js'
import { httpOrigin } from '../config.js'
import type { Indexer } from './indexer.js'
import { httpUrl } from './subscription.js'

const PAGE = 1000

/**
 * Lists the repos of a firehose host for a backfill: `com.atproto.sync.listReposByCollection`
 * for each AC collection (a relay), else `com.atproto.sync.listRepos` (a PDS), whose inactive
 * repos are recorded on their actor (Indexer.markInactive) as far as the host speaks for them
 * (the repo's own PDS or a trusted relay), else as their own PDS confirms (see Provenance): a
 * host cannot hide other hosts' accounts by listing them.
 */
export class RepoLister {
  constructor(
    private readonly indexer: Indexer,
    private readonly stopped: () => boolean,
  ) {}

  /**
   * The active repos `source` lists (inactive ones are recorded, not returned).
   * @throws when the host serves neither method, or on network errors.
   */
  async list(source: string): Promise<Set<string>> {
    const base = httpUrl(source)
    const listed = new Set<string>()
    if (!(await this.listByCollection(base, listed))) await this.listRepos(base, source, listed)
    return listed
  }

  /** `listReposByCollection` for each AC NSID (relays); false when the host does not serve it. */
  private async listByCollection(base: string, listed: Set<string>): Promise<boolean> {
    for (const col of collections) {
      let cursor: string | undefined
      do {
        const res = await getJson(`${base}/xrpc/com.atproto.sync.listReposByCollection`, { collection: col.nsid, limit: String(PAGE), cursor })
        if (!res) return false
        const page = res as { repos?: Array<{ did: string }>; cursor?: string }
        for (const r of page.repos ?? []) listed.add(r.did)
        cursor = page.repos?.length ? page.cursor : undefined
      } while (cursor && !this.stopped())
    }
    return true
  }

  /** `listRepos` (a PDS): every repo, with its status. */
  private async listRepos(base: string, source: string, listed: Set<string>): Promise<void> {
    const { provenance } = this.indexer
    let cursor: string | undefined
    do {
      const res = await getJson(`${base}/xrpc/com.atproto.sync.listRepos`, { limit: String(PAGE), cursor })
      if (!res) throw new Error(`${base} serves neither listReposByCollection nor listRepos`)
      const page = res as { repos?: Array<{ did: string; active?: boolean; status?: string }>; cursor?: string }
      for (const r of page.repos ?? []) {
        if (r.active !== false) listed.add(r.did)
        else if (await provenance.speaksFor(httpOrigin(base), r.did)) await this.indexer.markInactive(r.did, source, r.status ?? 'deactivated')
        else {
          const confirmed = await provenance.accountStatus(r.did)
          if (confirmed?.status) await this.indexer.markInactive(r.did, source, confirmed.status)
          else if (confirmed) listed.add(r.did)
        }
      }
      cursor = page.repos?.length ? page.cursor : undefined
    } while (cursor && !this.stopped())
  }
}

/**
 * GET `url` with `params`; the JSON body, or null when the host answers 4xx/5xx for the method
 * (not implemented, or a PDS proxying it nowhere).
 * @throws on network errors.
 */
async function getJson(url: string, params: Record<string, string | undefined>): Promise<unknown | null> {
  const u = new URL(url)
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v)
  const res = await fetch(u, { signal: AbortSignal.timeout(60_000) })
  if (!res.ok) {
    await res.body?.cancel()
    return null
  }
  return res.json()
}

import { backfillProgress, backfillUnfinished, beginBackfill, finishBackfill, markListed, pendingRepos, unlistedRepos } from '../db/store.js'
import { retry } from '../retry.js'
import { metrics } from './metrics.js'
import { RepoFetcher, type RepoFetcherOptions } from './repo-fetcher.js'
import { RepoLister } from './repo-lister.js'
import { httpUrl } from './subscription.js'

/** What a backfill needs: what each repo's fetch needs (indexer, identity, verification, limits). */
export type BackfillOptions = RepoFetcherOptions

/**
 * Backfill runs, one host at a time per host: a run lists the host's repos ({@link RepoLister}),
 * backfills each pending one ({@link RepoFetcher}), removes the repos the host no longer lists,
 * and is marked done. Progress is kept per repo in the `repo` table and per host in `backfill`
 * (src/db/store.ts), so an interrupted run resumes; a failed run (host unreachable) is resumed
 * with a growing wait (5 s doubling to 5 min).
 *
 * Hand-over to the live stream (src/ingest/handover.ts): a run only starts once the host's
 * stream is connected, so every commit missing from a snapshot is delivered live; live commits at
 * or below a repo's snapshot rev are skipped, and a snapshot older than applied live commits is
 * fetched again.
 */
export class Backfiller {
  private readonly running = new Map<string, Promise<void>>()
  private readonly stopping = new AbortController()
  private readonly lister: RepoLister
  private readonly fetcher: RepoFetcher

  constructor(private readonly opts: BackfillOptions) {
    this.lister = new RepoLister(opts.indexer, () => this.stopping.signal.aborted)
    this.fetcher = new RepoFetcher(opts)
  }

  /**
   * Runs (`fresh`: starts over) or resumes the backfill of `source`, after the run in progress in
   * this process if there is one (a request during a run, e.g. after a host reset, must not be
   * folded into a run that listed the repos before it). Resolves when done; never rejects.
   */
  run(source: string, reason: string, fresh: boolean): Promise<void> {
    const previous = this.running.get(source) ?? Promise.resolve()
    const run: Promise<void> = previous
      .then(() => this.executeWithRetry(source, reason, fresh))
      .finally(() => {
        if (this.running.get(source) === run) this.running.delete(source)
      })
    this.running.set(source, run)
    return run
  }

  /** Starts a new run of `source` (shown as running at once; see beginBackfill). */
  begin(source: string, reason: string): Promise<void> {
    return beginBackfill(this.opts.indexer.db, source, reason)
  }

  /** Whether `source` has a backfill that started and did not finish (crash, stop). */
  unfinished(source: string): Promise<boolean> {
    return backfillUnfinished(this.opts.indexer.db, source)
  }

  /** Fetches one repo again (after a #sync event or a commit that failed verification). */
  resync(did: string, source: string): Promise<void> {
    return this.repo(did, source)
  }

  /** Resolves when no run is going and no repo is being fetched. */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all(this.running.values())
    await this.fetcher.idle()
  }

  /** Stops taking new repos; resolves when the ones in flight are done. */
  async stop(): Promise<void> {
    this.stopping.abort()
    await this.fetcher.stop()
    await Promise.all(this.running.values())
  }

  /** {@link execute}, resumed after a failure (host unreachable…) with a growing wait, until stopped. */
  private async executeWithRetry(source: string, reason: string, fresh: boolean): Promise<void> {
    await retry((attempt) => this.execute(source, reason, fresh && attempt === 1), {
      minMs: 5_000,
      maxMs: 300_000,
      signal: this.stopping.signal,
      onFailure: (err, attempt) => {
        this.opts.log.error({ source, err: err.message, retryInSeconds: Math.min(5 * 2 ** (attempt - 1), 300) }, 'backfill failed; resuming it later')
      },
    })
  }

  private async execute(source: string, reason: string, fresh: boolean): Promise<void> {
    const { indexer, log } = this.opts
    if (this.stopping.signal.aborted) return
    const started = Date.now()
    if (fresh || !(await this.unfinished(source))) await this.begin(source, reason)
    log.info({ source, reason }, 'backfill starting')
    const listed = await this.lister.list(source)
    await markListed(indexer.db, source, [...listed])
    await this.updateGauges(source)
    await Promise.all((await pendingRepos(indexer.db, source)).map((did) => this.repo(did, source)))
    if (this.stopping.signal.aborted) return
    await this.removeGone(source, listed, started)
    await finishBackfill(indexer.db, source)
    await this.updateGauges(source)
    log.info({ source, repos: listed.size, seconds: (Date.now() - started) / 1000 }, 'backfill done')
  }

  /**
   * A repo the host no longer lists is gone from it: when the host is a PDS and the actor's
   * PDS is that host and no live commit touched it during the run, its records leave the index.
   * (A relay lists only repos with AC records, but cannot prove a repo has none, so nothing is
   * removed on a relay's word.)
   */
  private async removeGone(source: string, listed: Set<string>, since: number): Promise<void> {
    const candidates = await unlistedRepos(this.opts.indexer.db, source, new URL(httpUrl(source)).origin, new Date(since).toISOString())
    for (const did of candidates.filter((did) => !listed.has(did))) {
      await this.opts.indexer.removeRepo(did)
      this.opts.log.info({ did, source }, 'repo no longer on its PDS: removed from the index')
    }
  }

  /** Backfills one repo, then refreshes the host's gauges. */
  private async repo(did: string, source: string): Promise<void> {
    await this.fetcher.backfill(did, source)
    void this.updateGauges(source)
  }

  private async updateGauges(source: string): Promise<void> {
    const [p] = (await backfillProgress(this.opts.indexer.db).catch(() => [])).filter((r) => r.source === source)
    if (!p) return
    for (const state of ['pending', 'done', 'failed'] as const) metrics.backfillRepos.set({ service: source, state }, p[state])
  }
}

import { setTimeout as sleep } from 'node:timers/promises'
import { applyPlan } from './apply.js'
import { applyOptions, clientFor, forEachRepo, type WriterOptions } from './backfill.js'
import type { Lanes } from './lanes.js'
import type { Ledger } from './ledger.js'
import { metrics } from './metrics.js'
import { idOf, planRepo, type Planned } from './plan.js'
import { RunRecorder } from './report.js'
import type { Sessions } from './sessions.js'

/** The last (or running) reconcile pass. */
export interface ReconcileStatus {
  running: boolean
  passes: number
  lastStartedAt?: string
  lastDurationMs?: number
  lastRepos?: number
  /** Repos compared per second in the last pass. */
  reposPerSecond?: number
}

export interface ReconcilerOptions extends WriterOptions {
  ledger: Ledger
  /** Seconds between passes; 0: only the first. */
  reconcileSeconds: number
  sessions: Sessions
  /** Live mode's lanes: a pass's writes to a repo are serialised with that repo's changes. */
  lanes: Lanes
  /** When live mode last touched an item (`collection id`, ms): a pass leaves items touched after it began to the change. */
  touched: Map<string, number>
  /** The database to read, as live mode currently has it (it reconnects after failures). */
  currentDb(): WriterOptions['db']
}

/**
 * Live mode's reconcile passes: a backfill over every repo at start and every `reconcileSeconds`
 * after, beside the change stream. Repo by repo, each batch of writes runs in the repo's lane, and
 * an item a change touched since the pass began is left to the change: the newest state wins.
 * A pass's cost (duration, repos per second) is logged, kept in {@link status} and exported.
 */
export class Reconciler {
  readonly status: ReconcileStatus = { running: false, passes: 0 }
  private readonly stopped = new AbortController()
  private first?: Promise<void>

  constructor(private readonly opts: ReconcilerOptions) {}

  /** Runs the first pass now and the next ones on schedule until {@link stop}. */
  async run(): Promise<void> {
    this.first = this.pass()
    await this.first
    while (!this.stopped.signal.aborted && this.opts.reconcileSeconds > 0) {
      await sleep(this.opts.reconcileSeconds * 1000, undefined, { signal: this.stopped.signal }).catch(() => {})
      if (!this.stopped.signal.aborted) await this.pass()
    }
  }

  /** Resolves once the first pass is over. */
  firstPass(): Promise<void> {
    return this.first ?? Promise.resolve()
  }

  stop(): void {
    this.stopped.abort()
  }

  /** One pass; never throws: a failed pass is logged and the next one tries again. */
  private async pass(): Promise<void> {
    const started = Date.now()
    Object.assign(this.status, { running: true, lastStartedAt: new Date(started).toISOString() })
    metrics.reconcileRunning.set(1)
    this.opts.log.info('reconcile pass starting')
    const recorder = new RunRecorder(false, this.opts.ledger, this.opts.log, false)
    const skip = (p: Planned) => (this.opts.touched.get(`${p.col.mongo} ${idOf(p)}`) ?? 0) >= started
    try {
      const options = { ...this.opts, db: this.opts.currentDb() }
      const repos = await forEachRepo(options, recorder, this.opts.sessions, undefined, async (job, repo) => {
        // A repo whose changes wait on transient errors is left to them: its lane would hold the pass.
        if (this.stopped.signal.aborted || this.opts.lanes.paused.has(job.account.user)) return
        const planned = await planRepo(job.items, repo.records, this.opts.ctx, true)
        await applyPlan(
          job.account,
          await clientFor(repo, planned),
          planned,
          applyOptions(options, recorder, { skip, exclusive: (fn) => this.opts.lanes.exclusive(job.account.user, fn) }),
        )
      })
      this.finished(started, repos, recorder)
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'reconcile pass failed; the next pass tries again')
    } finally {
      this.status.running = false
      metrics.reconcileRunning.set(0)
      for (const [key, at] of this.opts.touched) if (at < started) this.opts.touched.delete(key)
      this.opts.ledger.pruneProblems()
    }
  }

  private finished(started: number, repos: number, recorder: RunRecorder) {
    const durationMs = Date.now() - started
    const reposPerSecond = Math.round((repos / Math.max(durationMs, 1)) * 10_000) / 10
    Object.assign(this.status, { lastDurationMs: durationMs, lastRepos: repos, reposPerSecond, passes: this.status.passes + 1 })
    metrics.reconcilePasses.inc()
    metrics.reconcileDuration.set(durationMs / 1000)
    metrics.reconcileRate.set(reposPerSecond)
    const counts = recorder.flatCounts()
    this.opts.log.info(
      { repos, durationMs, reposPerSecond, changes: (counts.create ?? 0) + (counts.update ?? 0) + (counts.delete ?? 0) },
      'reconcile pass done',
    )
  }
}

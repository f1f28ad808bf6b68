import { Counter, Gauge, Registry } from 'prom-client'
import { registerPartMetrics } from '../metrics.js'
import type { ProblemGroup } from './status.js'

/**
 * The writer's Prometheus metrics, in a registry of their own registered with the process's
 * (src/metrics.ts): served by the AppView's `/metrics` when both run in one process
 * (`ac-appview start`), and on METRICS_PORT by `writer live` alone. Labels never carry item or person identifiers: problems
 * are labelled by action and reason pattern only.
 */
export const writerMetrics = new Registry()
registerPartMetrics(writerMetrics)

const registers = [writerMetrics]

/** Where the `writer_problems` gauge reads the current problem groups (set by live mode). */
let problemSource: (() => ProblemGroup[]) | undefined

/** Reason patterns exported at most: the largest groups. */
const MAX_PROBLEM_SERIES = 50

export const metrics = {
  /** Live changes handled, by result: `mirrored`, or `failed` (recorded as a problem). */
  changes: new Counter({ name: 'writer_changes_total', help: 'MongoDB changes handled by writer live, by result', labelNames: ['result'], registers }),
  /** Changes received and not yet mirrored (queued, running or waiting on a transient error). */
  backlog: new Gauge({ name: 'writer_backlog', help: 'Changes received and not yet mirrored', registers }),
  /** Repos whose changes are waiting on transient errors (PDS or MongoDB unreachable). */
  pausedRepos: new Gauge({ name: 'writer_paused_repos', help: 'Repos whose changes wait on transient errors', registers }),
  reconcilePasses: new Counter({ name: 'writer_reconcile_passes_total', help: 'Reconcile passes finished', registers }),
  reconcileRunning: new Gauge({ name: 'writer_reconcile_running', help: '1 while a reconcile pass runs', registers }),
  reconcileDuration: new Gauge({ name: 'writer_reconcile_duration_seconds', help: 'Duration of the last reconcile pass', registers }),
  reconcileRate: new Gauge({ name: 'writer_reconcile_repos_per_second', help: 'Repos compared per second in the last reconcile pass', registers }),
  problems: new Gauge({
    name: 'writer_problems',
    help: 'Items (or repos) with a current problem, by action and reason pattern (largest groups)',
    labelNames: ['action', 'reason'],
    registers,
    collect() {
      this.reset()
      for (const g of problemSource?.().slice(0, MAX_PROBLEM_SERIES) ?? []) this.set({ action: g.action, reason: g.reason }, g.items)
    },
  }),
}

/** Points the `writer_problems` gauge at a source of problem groups (the live writer's ledger). */
export function setProblemSource(source: (() => ProblemGroup[]) | undefined): void {
  problemSource = source
}

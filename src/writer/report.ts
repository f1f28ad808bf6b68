import { mirrored, type Kind } from '../collections/index.js'
import type { Logger } from '../log.js'
import type { Ledger, Problem } from './ledger.js'

export type Action = 'create' | 'update' | 'delete' | 'unchanged' | 'skipped' | 'invalid' | 'failed'
/** The columns of the summary table, one count per item each. */
export const ACTIONS: Action[] = ['create', 'update', 'delete', 'unchanged', 'skipped', 'invalid', 'failed']

/** What happened to one MongoDB document (or one record on the PDS). */
export interface Outcome {
  kind: Kind
  /** MongoDB `_id` as hex (as found for a malformed document; the record's `ref` for an orphan). */
  id: string
  /** Handle or DID of the repo, or the owner's `users._id` when it has no PDS account. */
  repo: string
  action: Action
  reason?: string
  uri?: string
  /** `repo` and `id` belong to a person without a PDS account (see {@link Problem.private}). */
  private?: boolean
}

/** An item mirrored with something optional left out (e.g. a thumbnail whose PNG is missing). */
export interface Warning {
  kind: Kind
  id: string
  repo: string
  reason: string
}

export interface BackfillReport {
  dryRun: boolean
  /** Repos compared (those a resumed run skipped as done are not counted). */
  repos: number
  /** Items per kind and action: every item is counted once. */
  counts: Record<Kind, Record<Action, number>>
  /** Items (and whole repos, kind `repo`) skipped, invalid or failed, and warnings, each with its reason. */
  problems: Problem[]
  /** Every change made (or planned, in a dry run). */
  changes: Outcome[]
  /** MongoDB documents whose back-references were written or cleared. */
  backrefsWritten: number
  durationMs: number
  /** Set when this run resumed an interrupted one: its id and the repos it had finished. */
  resumed?: { runId: number; repos: number }
}

/**
 * Collects a run's outcomes: counts per kind and action, the changes, the problems. With a
 * ledger, problems are kept there too ({@link Ledger.recordProblems}: one row per item and
 * reason) and cleared for items that succeed; each new problem is logged once at warn level
 * (problems of people without a PDS account without their identifiers: see {@link Problem.private}).
 * Ledger writes are buffered and written by {@link flush}, once per repo.
 */
export class RunRecorder {
  readonly report: BackfillReport
  private pendingProblems: Problem[] = []
  private pendingResolved: Array<{ kind: string; id: string }> = []

  /**
   * @param collect keep every change and problem in {@link report} (a run's report); live mode
   *   keeps only counts, since it runs for weeks
   */
  constructor(
    dryRun: boolean,
    private readonly ledger: Ledger | undefined,
    private readonly log: Logger,
    private readonly collect = true,
  ) {
    this.report = { dryRun, repos: 0, counts: emptyCounts(), problems: [], changes: [], backrefsWritten: 0, durationMs: 0 }
  }

  /** One item's outcome. */
  item(o: Outcome): void {
    this.report.counts[o.kind][o.action]++
    if (o.action === 'create' || o.action === 'update' || o.action === 'delete' || o.action === 'unchanged') {
      if (o.action !== 'unchanged' && this.collect) this.report.changes.push(o)
      this.pendingResolved.push({ kind: o.kind, id: o.id })
      return
    }
    this.problem({ kind: o.kind, id: o.id, repo: o.repo, action: o.action, reason: o.reason ?? o.action, ...(o.private ? { private: true } : {}) })
  }

  /** An item mirrored without something optional: a warning, not a failure (its outcome is counted apart). */
  warning(w: Warning): void {
    this.problem({ ...w, action: 'warning' })
  }

  /** A whole repo failed for one reason (login refused, PDS down): its items count as failed, one problem line. */
  repoFailed(repo: { did: string; name: string }, items: Array<{ kind: Kind }>, reason: string): void {
    for (const i of items) this.report.counts[i.kind].failed++
    this.problem({ kind: 'repo', id: repo.did, repo: repo.name, action: 'failed', reason, detail: `${items.length} items not mirrored` })
  }

  /** The repo worked (logged in, listed): clears an earlier repo-wide problem. */
  repoWorked(did: string): void {
    this.resolved('repo', did)
  }

  /** A problem that is not an item's outcome (e.g. a handle the PDS refused). */
  problem(p: Problem): void {
    if (this.collect) this.report.problems.push(p)
    this.pendingProblems.push(p)
  }

  /** What had a problem (kind and id, as in {@link Problem}) now works. */
  resolved(kind: string, id: string): void {
    this.pendingResolved.push({ kind, id })
  }

  /** Writes buffered problems and resolutions to the ledger; logs the new problems. */
  flush(): void {
    const problems = this.pendingProblems
    const resolved = this.pendingResolved
    this.pendingProblems = []
    this.pendingResolved = []
    if (!this.ledger || this.report.dryRun) return
    this.ledger.resolveProblems(resolved)
    logNewProblems(this.log, this.ledger.recordProblems(problems))
  }

  /** Counts summed over kinds, for the ledger. */
  flatCounts(): Record<string, number> {
    const flat: Record<string, number> = {}
    for (const byAction of Object.values(this.report.counts)) for (const [a, n] of Object.entries(byAction)) flat[a] = (flat[a] ?? 0) + n
    return flat
  }
}

/**
 * Logs each new problem once at warn level, with the item and reason; problems of people without
 * a PDS account are summed per reason instead (their Auth0 subject and MongoDB ids are not for
 * logs; `writer problems` shows them to operators).
 */
export function logNewProblems(log: Logger, problems: Problem[]): void {
  const hidden = new Map<string, number>()
  for (const p of problems) {
    if (p.private) hidden.set(`${p.action}: ${p.reason}`, (hidden.get(`${p.action}: ${p.reason}`) ?? 0) + 1)
    else log.warn({ kind: p.kind, id: p.id, repo: p.repo, action: p.action, reason: p.reason, ...(p.detail ? { detail: p.detail } : {}) }, 'writer problem')
  }
  for (const [what, items] of hidden) log.warn({ problem: what, items }, 'writer problem (items of people without a PDS account; see `writer problems`)')
}

function emptyCounts(): Record<Kind, Record<Action, number>> {
  return Object.fromEntries(mirrored.map((c) => [c.kind, Object.fromEntries(ACTIONS.map((a) => [a, 0]))])) as Record<Kind, Record<Action, number>>
}

import type { Logger } from './log.js'
import type { AuditFinding, AuditReport } from './writer/audit.js'
import { reasonPattern, type Problem } from './writer/ledger.js'
import { ACTIONS, type BackfillReport, type Outcome } from './writer/report.js'
import type { ProblemGroup } from './writer/status.js'

/** Examples printed per group unless `--verbose`. */
const EXAMPLES = 3

/** Stops cleanly on SIGINT/SIGTERM; a second signal exits at once. */
export function onShutdown(log: Logger, stop: () => Promise<void>) {
  let stopping = false
  const handler = (signal: string) => {
    if (stopping) process.exit(1)
    stopping = true
    log.info({ signal }, 'shutting down')
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err: err.message }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.once('SIGINT', handler)
  process.once('SIGTERM', handler)
}

/**
 * A backfill's report for a terminal: problems grouped by reason (count, a few examples; every
 * item with `verbose`), in a dry run the changes it would make grouped the same way, and the
 * summary table last, so it is what stays on screen.
 */
export function formatReport(report: BackfillReport, verbose = false): string {
  const out: string[] = []
  if (report.resumed) out.push(`resumed interrupted run #${report.resumed.runId}: its ${report.resumed.repos} finished repos were skipped`, '')
  const problems = groupProblems(report.problems)
  if (problems.length) out.push(`problems (${report.problems.length}):`, ...problems.flatMap((g) => formatGroup(g, verbose)), '')
  if (report.dryRun && report.changes.length)
    out.push(`would change (${report.changes.length}):`, ...groupChanges(report.changes).flatMap((g) => formatGroup(g, verbose)), '')
  const rows = Object.entries(report.counts).map(([kind, c]) => ({ kind, ...c }))
  out.push(`${report.dryRun ? 'DRY RUN: nothing was written. ' : ''}${report.repos} repos in ${(report.durationMs / 1000).toFixed(1)} s`)
  out.push(
    ...table(
      ['kind', ...ACTIONS],
      rows.map((r) => [r.kind, ...ACTIONS.map((a) => String(r[a]))]),
    ),
  )
  return out.join('\n') + '\n'
}

/** The audit's findings grouped by type and reason, then the verdict; with --fix, the repair and the audit after it. */
export function formatAudit(report: AuditReport, verbose = false): string {
  const groups = groupBy(
    report.findings,
    (f) => `${f.type}\u0000${f.detail ? reasonPattern(f.detail) : ''}`,
    (f: AuditFinding) => `${f.kind} ${f.id} in ${f.repo}${f.uri ? ` (${f.uri})` : ''}`,
  )
  const out = groups.flatMap((g) => formatGroup(g, verbose))
  out.push(
    `${report.repos} repos audited: ${
      report.clean
        ? 'clean'
        : Object.entries(report.counts)
            .map(([t, n]) => `${n} ${t}`)
            .join(', ')
    }`,
  )
  let text = out.join('\n') + '\n'
  if (report.fix) text += `\nrepair:\n${formatReport(report.fix.repair, verbose)}\naudit after repair:\n${formatAudit(report.fix.after, verbose)}`
  return text
}

/** `writer problems`: the ledger's current problems by reason, each with a few examples. */
export function formatProblemGroups(groups: ProblemGroup[], verbose = false): string {
  if (!groups.length) return 'no problems\n'
  const out = groups.flatMap((g) =>
    formatGroup(
      {
        label: `${g.action}: ${g.reason}`,
        count: g.items,
        examples: g.examples.map((p) => `${describe(p)}, seen ${p.count}× since ${p.firstSeen.slice(0, 16)}`),
      },
      verbose,
    ),
  )
  out.push(`${groups.reduce((n, g) => n + g.items, 0)} items in ${groups.length} groups`)
  return out.join('\n') + '\n'
}

interface Group {
  label: string
  count: number
  examples: string[]
}

function formatGroup(g: Group, verbose: boolean): string[] {
  const shown = verbose ? g.examples : g.examples.slice(0, EXAMPLES)
  const more = g.count - shown.length
  return [
    `  ${String(g.count).padStart(6)}  ${g.label}`,
    ...shown.map((e) => `          ${e}`),
    ...(more > 0 ? [`          … and ${more} more (--verbose or --json for all)`] : []),
  ]
}

function groupProblems(problems: Problem[]): Group[] {
  return groupBy(problems, (p) => `${p.action}: ${reasonPattern(p.reason)}`, describe)
}

function groupChanges(changes: Outcome[]): Group[] {
  return groupBy(
    changes,
    (c) => `${c.action} ${c.kind}`,
    (c) => `${c.id} in ${c.repo}${c.uri ? ` (${c.uri})` : ''}${c.reason ? `: ${c.reason}` : ''}`,
  )
}

function describe(p: Problem): string {
  return `${p.kind} ${p.id} (${p.repo})${p.reason !== reasonPattern(p.reason) ? `: ${p.reason}` : ''}${p.detail ? ` [${p.detail}]` : ''}`
}

/** Groups `items` by `key`, largest group first; the label is the key (after a NUL, a detail). */
function groupBy<T>(items: T[], key: (t: T) => string, example: (t: T) => string): Group[] {
  const groups = new Map<string, Group>()
  for (const item of items) {
    const k = key(item)
    const g = groups.get(k) ?? { label: k.replace('\u0000', ': ').replace(/: $/, ''), count: 0, examples: [] }
    g.count++
    g.examples.push(example(item))
    groups.set(k, g)
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.label.localeCompare(b.label))
}

/** Rows under a header; numbers right-aligned, text left-aligned. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const numeric = header.map((_, i) => i > 0 && rows.every((r) => /^[\d.,]*$/.test(r[i])))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)]
}

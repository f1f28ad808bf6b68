import type { Logger } from './log.js'
import type { AuditReport } from './writer/audit.js'
import { ACTIONS, type BackfillReport } from './writer/backfill.js'

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

/** The summary table: one row per kind, one column per action, then the problems with reasons. */
export function printReport(report: BackfillReport) {
  const rows = Object.entries(report.counts).map(([kind, c]) => ({ kind, ...c }))
  const widths = ['kind', ...ACTIONS].map((h) => Math.max(h.length, ...rows.map((r) => String(r[h as keyof typeof r]).length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  const out = [
    `${report.dryRun ? 'DRY RUN: nothing was written. ' : ''}${report.repos} repos in ${(report.durationMs / 1000).toFixed(1)} s`,
    line(['kind', ...ACTIONS]),
    ...rows.map((r) => line([r.kind, ...ACTIONS.map((a) => String(r[a]))])),
  ]
  if (report.dryRun) for (const c of report.changes) out.push(`would ${c.action} ${c.kind} ${c.id} in ${c.repo}${c.uri ? ` (${c.uri})` : ''}`)
  for (const p of report.problems) out.push(`${p.action}: ${p.kind} ${p.id} (${p.repo}): ${p.reason}`)
  process.stdout.write(out.join('\n') + '\n')
}

/** The audit's findings, one line each, then counts; with --fix, the repair and the audit after it. */
export function printAudit(report: AuditReport) {
  const out = report.findings.map((f) => `${f.type}: ${f.kind} ${f.id} in ${f.repo}${f.uri ? ` (${f.uri})` : ''}${f.detail ? `: ${f.detail}` : ''}`)
  out.push(`${report.repos} repos audited: ${report.clean ? 'clean' : Object.entries(report.counts).map(([t, n]) => `${n} ${t}`).join(', ')}`)
  process.stdout.write(out.join('\n') + '\n')
  if (report.fix) {
    process.stdout.write('\nrepair:\n')
    printReport(report.fix.repair)
    process.stdout.write('\naudit after repair:\n')
    printAudit(report.fix.after)
  }
}

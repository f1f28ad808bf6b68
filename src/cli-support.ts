import type { Logger } from './log.js'
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

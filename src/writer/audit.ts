import type { Kind } from '../collections/index.js'
import { backfill, forEachRepo, isComplete, sessionsOf, type WriterOptions } from './backfill.js'
import { backrefUpdate, idOf, planRepo, type Finding, type Planned } from './plan.js'
import { RunRecorder, type BackfillReport } from './report.js'

export type AuditFindingType = Exclude<Finding, 'ok' | 'not-ready' | 'incomplete'> | 'dangling-backref' | 'invalid' | 'failed'

/** One fault found by the audit. */
export interface AuditFinding {
  type: AuditFindingType
  /** The item's kind, or `repo` for a repo that could not be read. */
  kind: Kind | 'repo'
  /** MongoDB `_id` (or the record's `ref` for an orphan; the DID for a repo). */
  id: string
  repo: string
  uri?: string
  detail?: string
}

export interface AuditReport {
  repos: number
  findings: AuditFinding[]
  counts: Partial<Record<AuditFindingType, number>>
  clean: boolean
  /** With `fix`: what the repair did, and the audit run after it. */
  fix?: { repair: BackfillReport; after: AuditReport }
}

/**
 * Compares MongoDB with each selected repo (every account's, with items or not) and lists the
 * faults: missing records, drifted fields, duplicates by `ref`, orphans (records of nuked,
 * deleted or unknown items), dangling back-references (MongoDB pointing where no record is, or at
 * the wrong record), invalid documents and repos that could not be read. A record lacking only an
 * optional blob that could not be made (a thumbnail of a missing PNG) is not a fault. Writes
 * nothing unless `fix`, which repairs all of it (the backfill's own plan, not resuming anything)
 * and audits again. `clean` is true only when nothing was found.
 */
export async function audit(opts: WriterOptions & { fix?: boolean }): Promise<AuditReport> {
  const findings: AuditFinding[] = []
  const recorder = new RunRecorder(true, undefined, opts.log)
  const { sessions, owned } = sessionsOf(opts)
  let repos: number
  try {
    repos = await forEachRepo(opts, recorder, sessions, undefined, async (job, repo) => {
      const planned = await planRepo(job.items, repo.records, opts.ctx, isComplete(opts))
      for (const p of planned) {
        const found = findingOf(p)
        if (found)
          findings.push({
            ...found,
            kind: p.col.kind,
            id: idOf(p),
            repo: job.account.handle ?? job.account.did,
            uri: p.existing?.uri ?? `at://${job.account.did}/${p.col.nsid}/${p.rkey}`,
          })
      }
    })
  } finally {
    if (owned) sessions.close()
  }
  for (const p of recorder.report.problems) {
    if (p.action === 'invalid' || p.action === 'failed')
      findings.push({ type: p.action, kind: p.kind as Kind | 'repo', id: p.id, repo: p.repo, detail: p.detail ? `${p.reason} (${p.detail})` : p.reason })
  }
  const report = summarise(repos, findings)
  if (!opts.fix || report.clean) return report
  const repair = await backfill({ ...opts, resume: false })
  return { ...report, fix: { repair, after: await audit({ ...opts, fix: false }) } }
}

function findingOf(p: Planned): { type: AuditFindingType; detail?: string } | null {
  if (p.finding === 'unbuildable') return { type: 'failed', detail: p.detail }
  if (p.finding !== 'ok' && p.finding !== 'not-ready' && p.finding !== 'incomplete') return { type: p.finding, detail: p.detail }
  if (!p.item || (p.item.live && !p.existing)) return null
  const want = p.existing ? { rkey: p.rkey, uri: p.existing.uri, cid: p.existing.cid } : null
  const update = backrefUpdate(p.col, p.item, want)
  return update
    ? { type: 'dangling-backref', detail: `MongoDB back-reference ${JSON.stringify(p.item.backrefShapes)} should be ${JSON.stringify(want)}` }
    : null
}

function summarise(repos: number, findings: AuditFinding[]): AuditReport {
  const counts: AuditReport['counts'] = {}
  for (const f of findings) counts[f.type] = (counts[f.type] ?? 0) + 1
  return { repos, findings, counts, clean: findings.length === 0 }
}

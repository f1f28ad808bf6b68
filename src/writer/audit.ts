import type { Kind } from '../collections/index.js'
import { backfill, forEachRepo, isComplete, repoName, type BackfillReport, type Outcome, type WriterOptions } from './backfill.js'
import { backrefUpdate, idOf, planRepo, type Finding, type Planned } from './plan.js'

export type AuditFindingType = Exclude<Finding, 'ok' | 'not-ready'> | 'dangling-backref' | 'invalid' | 'failed'

/** One fault found by the audit. */
export interface AuditFinding {
  type: AuditFindingType
  kind: Kind
  /** MongoDB `_id` (or the record's `ref` for an orphan). */
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
 * Compares MongoDB with each selected repo and lists the faults: missing records, drifted
 * fields, duplicates by `ref`, orphans (records of nuked, deleted or unknown items), dangling
 * back-references (MongoDB pointing where no record is, or at the wrong record), invalid
 * documents and repos that could not be read. Writes nothing unless `fix`, which repairs all of
 * it (the backfill's own plan) and audits again. `clean` is true only when nothing was found.
 */
export async function audit(opts: WriterOptions & { fix?: boolean }): Promise<AuditReport> {
  const findings: AuditFinding[] = []
  const noteOutcome = (o: Outcome) => {
    if (o.action === 'invalid' || o.action === 'failed') findings.push({ type: o.action, kind: o.kind, id: o.id, repo: o.repo, detail: o.reason })
  }
  const repos = await forEachRepo(opts, noteOutcome, async (job, _client, records) => {
    const planned = await planRepo(job.items, records, opts.ctx, isComplete(opts))
    for (const p of planned) {
      const found = findingOf(p)
      if (found) findings.push({ ...found, kind: p.col.kind, id: idOf(p), repo: repoName(job.account), uri: p.existing?.uri ?? `at://${job.account.did}/${p.col.nsid}/${p.rkey}` })
    }
  })
  const report = summarise(repos, findings)
  if (!opts.fix || report.clean) return report
  const repair = await backfill(opts)
  return { ...report, fix: { repair, after: await audit({ ...opts, fix: false }) } }
}

function findingOf(p: Planned): { type: AuditFindingType; detail?: string } | null {
  if (p.finding === 'unbuildable') return { type: 'failed', detail: p.detail }
  if (p.finding !== 'ok' && p.finding !== 'not-ready') return { type: p.finding, detail: p.detail }
  if (!p.item || (p.item.live && !p.existing)) return null
  const want = p.existing ? { rkey: p.rkey, uri: p.existing.uri, cid: p.existing.cid } : null
  const update = backrefUpdate(p.col, p.item, want)
  return update ? { type: 'dangling-backref', detail: `MongoDB back-reference ${JSON.stringify(p.item.backrefShapes)} should be ${JSON.stringify(want)}` } : null
}

function summarise(repos: number, findings: AuditFinding[]): AuditReport {
  const counts: AuditReport['counts'] = {}
  for (const f of findings) counts[f.type] = (counts[f.type] ?? 0) + 1
  return { repos, findings, counts, clean: findings.length === 0 }
}

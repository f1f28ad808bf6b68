import type { Kind } from '../collections/index.js'
import { stripUserinfo } from '../redact.js'
import type { PartStatus } from '../supervisor.js'
import type { WriterStatus } from '../writer/status.js'
import type { QuarantinedRecord, ReadModel } from './read-model.js'

/** One record claiming a code that another record also claims. */
export interface Claimant {
  uri: string
  did: string
  handle: string | null
  /** The author's repo is on TRUSTED_PDS (`actor.trusted`). */
  trusted: boolean
  /** The author's account status (takendown, deactivated…), null when active. */
  status: string | null
  when: string
  /** This claimant owns the code: the first trusted one in code-authority order. */
  winner: boolean
}

/** A short code claimed by more than one indexed record (code authority). */
export interface CodeConflict {
  kind: string
  code: string
  /** In code-authority order: trusted first, then earliest `when`, then uri. */
  claimants: Claimant[]
}

/** What the operator dashboard shows besides the ingest's `/xrpc/_health` and the public feeds. */
export interface OperatorStatus {
  generatedAt: string
  /** Indexed items per kind (hidden authors included: this is what the index holds). */
  counts: Record<Kind, number>
  actors: { total: number; trusted: number; hidden: number }
  quarantine: { total: number; recent: QuarantinedRecord[] }
  conflicts: CodeConflict[]
  /** The writer's latest run (src/writer/status.ts), null when it has never run or cannot be reached. */
  writer: WriterStatus | null
  /** Why the writer's status is unknown: no source of it (`serve` without WRITER_STATUS_URL), or its process did not answer. */
  writerUnreachable?: string
  /** Under `ac-appview start`: each part's state, with its last error. */
  parts?: PartStatus[]
}

/** Rows of the quarantine and conflict lists shown at most. */
const LIST_MAX = 50

/**
 * Operator status from the index (through the read model) and the writer's status (`writer`, as
 * the AppView was given it: from the live writer in this process, or fetched from the writer's
 * process; null when unknown). Conflicts are computed from the item table alone: every (kind,
 * code) with more than one claimant, trusted or not.
 */
export async function operatorStatus(
  index: ReadModel,
  writer: (() => Promise<WriterStatus | null>) | undefined,
  parts?: () => PartStatus[],
): Promise<OperatorStatus> {
  const [counts, actors, quarantine, conflicts, writerStatus] = await Promise.all([
    index.itemCounts(),
    index.actorCounts(),
    index.quarantine(LIST_MAX),
    codeConflicts(index),
    writerState(writer),
  ])
  return { generatedAt: new Date().toISOString(), counts, actors, quarantine, conflicts, ...writerStatus, ...(parts ? { parts: parts() } : {}) }
}

/** The writer's status from `writer`, or why it is unknown (no source; the source failed: its message, without credentials). */
async function writerState(writer: (() => Promise<WriterStatus | null>) | undefined): Promise<Pick<OperatorStatus, 'writer' | 'writerUnreachable'>> {
  if (!writer) return { writer: null, writerUnreachable: 'the writer runs elsewhere: set WRITER_STATUS_URL to its /status' }
  try {
    return { writer: await writer() }
  } catch (err) {
    return { writer: null, writerUnreachable: stripUserinfo((err as Error).message) }
  }
}

/**
 * Codes with more than one claimant (at most {@link LIST_MAX} codes), each with its claimants in
 * code-authority order (ReadModel.contestedCodes); the winner is the first trusted one.
 */
export async function codeConflicts(index: ReadModel): Promise<CodeConflict[]> {
  const byCode = new Map<string, CodeConflict>()
  for (const r of await index.contestedCodes(LIST_MAX)) {
    const key = `${r.kind} ${r.code}`
    if (!byCode.has(key)) byCode.set(key, { kind: r.kind, code: r.code, claimants: [] })
    const claimants = byCode.get(key)!.claimants
    const trusted = r.trusted === 1
    claimants.push({ uri: r.uri, did: r.did, handle: r.handle, trusted, status: r.status, when: r.sortAt, winner: trusted && claimants.length === 0 })
  }
  return [...byCode.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.code.localeCompare(b.code))
}

/**
 * `load` memoised for `ttlMs`: concurrent and repeated calls within the window share one
 * computation (the dashboard polls and Prometheus scrapes; neither needs fresher data).
 */
export function memoize<T>(ttlMs: number, load: () => Promise<T>): () => Promise<T> {
  let cached: { at: number; value: Promise<T> } | undefined
  return () => {
    if (!cached || Date.now() - cached.at > ttlMs) {
      const value = load()
      cached = { at: Date.now(), value }
      value.catch(() => {
        if (cached?.value === value) cached = undefined
      })
    }
    return cached.value
  }
}

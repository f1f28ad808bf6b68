import { sql } from 'kysely'
import { KINDS, type Kind } from '../collections/index.js'
import type { IndexDb } from '../db/index.js'
import type { PartStatus } from '../supervisor.js'
import { readWriterStatus, type WriterStatus } from '../writer/status.js'
import { earliestFirst } from './queries.js'

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

/** A short code claimed by more than one indexed record (design.md, code authority). */
export interface CodeConflict {
  kind: string
  code: string
  /** In code-authority order: trusted first, then earliest `when`, then uri. */
  claimants: Claimant[]
}

export interface QuarantinedRecord {
  uri: string
  did: string
  collection: string
  reason: string
  firstSeen: string
  lastSeen: string
}

/** What the operator dashboard shows besides the ingest's `/xrpc/_health` and the public feeds. */
export interface OperatorStatus {
  generatedAt: string
  /** Indexed items per kind (hidden authors included: this is what the index holds). */
  counts: Record<Kind, number>
  actors: { total: number; trusted: number; hidden: number }
  quarantine: { total: number; recent: QuarantinedRecord[] }
  conflicts: CodeConflict[]
  /** The writer's latest run (src/writer/status.ts), null when it has never run here. */
  writer: WriterStatus | null
  /** Under `ac-appview start`: each part's state, with its last error. */
  parts?: PartStatus[]
}

/** Rows of the quarantine and conflict lists shown at most. */
const LIST_MAX = 50

/**
 * Operator status from the index and the writer's ledger in `dataDir`. Conflicts are computed
 * from the item table alone: every (kind, code) with more than one claimant, trusted or not.
 */
export async function operatorStatus(db: IndexDb, dataDir: string, parts?: () => PartStatus[]): Promise<OperatorStatus> {
  const [counts, actors, quarantine, conflicts, writer] = await Promise.all([itemCounts(db), actorCounts(db), quarantined(db), codeConflicts(db), readWriterStatus(dataDir)])
  return { generatedAt: new Date().toISOString(), counts, actors, quarantine, conflicts, writer, ...(parts ? { parts: parts() } : {}) }
}

async function itemCounts(db: IndexDb): Promise<Record<Kind, number>> {
  const rows = await db.selectFrom('item').select(['kind', sql<number>`count(*)`.as('n')]).groupBy('kind').execute()
  const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>
  for (const r of rows) if (r.kind in counts) counts[r.kind as Kind] = Number(r.n)
  return counts
}

async function actorCounts(db: IndexDb): Promise<OperatorStatus['actors']> {
  const row = await db
    .selectFrom('actor')
    .select([sql<number>`count(*)`.as('total'), sql<number>`coalesce(sum(trusted), 0)`.as('trusted'), sql<number>`count(status)`.as('hidden')])
    .executeTakeFirstOrThrow()
  return { total: Number(row.total), trusted: Number(row.trusted), hidden: Number(row.hidden) }
}

async function quarantined(db: IndexDb): Promise<OperatorStatus['quarantine']> {
  const [total, recent] = await Promise.all([
    db.selectFrom('quarantine').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow(),
    db.selectFrom('quarantine').select(['uri', 'did', 'collection', 'reason', 'firstSeen', 'lastSeen']).orderBy('lastSeen', 'desc').limit(LIST_MAX).execute(),
  ])
  return { total: Number(total.n), recent }
}

/**
 * Codes with more than one claimant (at most {@link LIST_MAX} codes), each with its claimants in
 * code-authority order: trusted first, then {@link earliestFirst}, the order `resolveCode` applies.
 */
export async function codeConflicts(db: IndexDb): Promise<CodeConflict[]> {
  const contested = db
    .selectFrom('item')
    .select(['kind', 'code'])
    .where('code', 'is not', null)
    .groupBy(['kind', 'code'])
    .having(sql`count(*)`, '>', 1)
    .orderBy('kind')
    .orderBy('code')
    .limit(LIST_MAX)
  const rows = await earliestFirst(
    db
      .selectFrom('item')
      .innerJoin('actor', 'actor.did', 'item.did')
      .select(['item.kind', 'item.code', 'item.uri', 'item.did', 'item.sortAt', 'actor.handle', 'actor.trusted', 'actor.status'])
      .where((eb) => eb(eb.refTuple('item.kind', 'item.code'), 'in', contested.$asTuple('kind', 'code')))
      .orderBy('actor.trusted', 'desc'),
  ).execute()
  const byCode = new Map<string, CodeConflict>()
  for (const r of rows) {
    const key = `${r.kind} ${r.code}`
    if (!byCode.has(key)) byCode.set(key, { kind: r.kind, code: r.code!, claimants: [] })
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

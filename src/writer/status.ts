import fs from 'node:fs'
import path from 'node:path'
import type { ProblemRow } from './ledger.js'

/** Problems sharing an action and a reason, e.g. 1,034 items `skipped: owner has no PDS account`. */
export interface ProblemGroup {
  action: string
  reason: string
  /** Items (or repos) with this problem now. */
  items: number
  firstSeen: string
  lastSeen: string
  /** The most recently seen few. */
  examples: ProblemRow[]
}

/** What the writer last did, for the operator dashboard, `writer status` and `/metrics`. */
export interface WriterStatus {
  /** `backfill`, `live`, `audit`, `wipe` or `restore`. */
  mode: string
  /** `interrupted` when its process died before finishing. */
  status: 'running' | 'finished' | 'interrupted'
  startedAt: string
  finishedAt: string | null
  /** Records created, updated, deleted; items unchanged, skipped, invalid, failed; live: changes mirrored. */
  counts: Record<string, number>
  /** Current problems, grouped by reason, largest group first. */
  problems: ProblemGroup[]
  /** Items (and repos) with a problem now. */
  problemItems: number
  /** Live mode: changes received but not yet mirrored. */
  backlog?: number
}

/**
 * The writer's latest run as recorded in its ledger under `dataDir`, or null when the writer has
 * never run there. Safe to call from another process.
 */
export async function readWriterStatus(dataDir: string): Promise<WriterStatus | null> {
  if (!fs.existsSync(path.join(dataDir, 'writer.sqlite'))) return null
  const { Ledger } = await import('./ledger.js')
  const ledger = new Ledger(dataDir)
  try {
    return ledger.latestStatus()
  } finally {
    ledger.close()
  }
}

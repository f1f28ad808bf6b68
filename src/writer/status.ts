import fs from 'node:fs'
import path from 'node:path'

/** What the writer last did, for the operator dashboard and `/metrics`. */
export interface WriterStatus {
  /** `backfill`, `live`, `audit`, `wipe` or `restore`. */
  mode: string
  startedAt: string
  finishedAt: string | null
  /** Records created, updated, deleted; items unchanged, skipped, invalid, failed. */
  counts: Record<string, number>
  /** Most recent problems (skipped, invalid, failed), newest first, with reasons. */
  problems: Array<{ kind: string; id: string; repo: string; action: string; reason?: string; at: string }>
  /** Live mode: changes seen but not yet mirrored. */
  backlog?: number
}

/**
 * The writer's latest run as recorded in its ledger under `dataDir`, or null when the writer has
 * never run there. Safe to call from another process (read-only).
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

/**
 * The task a verify pool worker runs (see ./verify-pool.ts): {@link decodeCommit}, the same
 * function the main thread runs with INGEST_VERIFY_THREADS=0, so the ops are the same.
 */
import { decodeCommit, type CommitOutcome, type CommitTask } from './verify.js'

/** {@link decodeCommit} of `task` (its `blocks` transferred to this thread). */
export function commit(task: CommitTask): Promise<CommitOutcome> {
  return decodeCommit(task)
}

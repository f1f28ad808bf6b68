/**
 * The task a verify pool worker runs (see ./verify-pool.ts): {@link decodeCommit}, the same
 * function the main thread runs with INGEST_VERIFY_THREADS=0, so the ops are the same.
 */
import { parentPort } from 'node:worker_threads'
import { WORKER_READY, decodeCommit, type CommitOutcome, type CommitTask } from './verify.js'

parentPort?.postMessage(WORKER_READY) // loaded: see CommitVerifier.ready in ./verify-pool.ts

/** {@link decodeCommit} of `task` (its `blocks` transferred to this thread). */
export function commit(task: CommitTask): Promise<CommitOutcome> {
  return decodeCommit(task)
}

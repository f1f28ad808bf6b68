import os from 'node:os'
import { RepoVerificationError } from '@atproto/repo'
import { Piscina } from 'piscina'
import { WORKER_READY, commitTask, decodeCommit, type CommitBody, type CommitOutcome, type DecodedOp } from './verify.js'

/**
 * Where the ingest verifies and decodes `#commit` events (docs/architecture.md, The ingest): the
 * CAR read with its block hashes checked, the commit's DID and signature, the MST proof of each
 * op, the records decoded. On worker threads, so that the main thread (frames, the post filter,
 * identity, the index's transactions) runs beside them on another core; the order in which
 * events are applied is the pipeline's (src/ingest/pipeline.ts), not the pool's: results are
 * awaited in seq order, whichever finishes first.
 */
export interface CommitVerifier {
  /** Worker threads; 0 verifies on the calling thread (the design before the pool). */
  readonly threads: number
  /**
   * The ops of `body` whose collection is one of `collections` (exact NSIDs), verified against
   * the repo's signing key `didKey` (a `did:key:…` resolved on the main thread; null: no checks,
   * INGEST_VERIFY=false), records as lexicon JSON. Ops that fail their MST proof are left out
   * (see verifyCommit in src/ingest/verify.ts). `body.blocks` is copied, never detached, so the
   * caller may retry with a fresh key.
   * @throws RepoVerificationError when the commit's DID is not the repo's or its signature does
   *   not verify against `didKey` (Identity.withSigningKey then retries once with a refreshed key);
   *   Error when the event is malformed (blocks not bytes, a CAR or block that does not decode, a
   *   bad CID) or a worker died.
   */
  decode(body: CommitBody, didKey: string | null, collections: string[]): Promise<DecodedOp[]>
  /**
   * Resolves once every worker has loaded its code (at once with 0 threads). Loading takes a
   * second or more of CPU per worker from TypeScript source on a busy machine: a stream started
   * meanwhile has its first DID lookups compete with it, and a lookup that times out costs the
   * event (it becomes a re-fetch of its repo).
   */
  ready(): Promise<void>
  /** Stops the workers, waiting for the tasks in hand (milliseconds: each is one commit). */
  close(): Promise<void>
}

/**
 * Tasks posted to one worker at once: while it works on one, the next is already in its port, so
 * it does not idle for a round trip between tasks. Two is enough: each task is a whole commit.
 */
const TASKS_PER_WORKER = 2

/** {@link CommitVerifier.ready} resolves after this long at most, in ms, whatever the workers said. */
const READY_TIMEOUT_MS = 60_000

/**
 * A pool of `threads` workers (`piscina`, as the writer's media pool, src/writer/media-pool.ts),
 * all started at once (the ingest runs for good); `threads` 0 gives the main-thread design.
 * Each task's CAR bytes are copied once into an ArrayBuffer of their own and transferred (not
 * cloned); what comes back is small (the ops, records as JSON). Idle workers never keep the
 * process alive (piscina unrefs them), and worker threads end with their process.
 * Source of the default: INGEST_VERIFY_THREADS (src/config.ts), the machine's cores.
 */
export function createVerifyPool(threads = os.availableParallelism()): CommitVerifier {
  if (threads === 0) {
    return {
      threads,
      decode: async (body, didKey, collections) => unwrap(await decodeCommit(commitTask(body, didKey, collections))),
      ready: async () => {},
      close: async () => {},
    }
  }
  // From TypeScript source (tsx, vitest) a worker needs tsx registered first: see verify-worker-source.mjs.
  const entry = import.meta.url.endsWith('.ts') ? './verify-worker-source.mjs' : './verify-worker.js'
  const pool = new Piscina({
    filename: new URL(entry, import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: TASKS_PER_WORKER,
  })
  let loaded = 0
  const ready = new Promise<void>((resolve) => {
    const onMessage = (message: unknown) => {
      if (message !== WORKER_READY || ++loaded < threads) return
      pool.off('message', onMessage)
      resolve()
    }
    pool.on('message', onMessage)
    setTimeout(resolve, READY_TIMEOUT_MS).unref() // a worker that cannot load fails its tasks instead: never wait for good
  })
  return {
    threads,
    async decode(body, didKey, collections) {
      if (!(body.blocks instanceof Uint8Array)) throw new Error('#commit blocks are not bytes')
      const blocks = new Uint8Array(body.blocks) // its own ArrayBuffer, exactly its size: transferred, never a pooled or shared one
      const task = { ...commitTask(body, didKey, collections), blocks }
      return unwrap(await pool.run(task, { name: 'commit', transferList: [blocks.buffer] }))
    },
    ready: () => ready,
    close: () => pool.close(),
  }
}

/** The ops of an outcome, or its refusal thrown as the error the main-thread design threw. */
function unwrap(outcome: CommitOutcome): DecodedOp[] {
  if (outcome.ok) return outcome.ops
  throw outcome.rejected ? new RepoVerificationError(outcome.message) : new Error(outcome.message)
}

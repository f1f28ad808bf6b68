import os from 'node:os'
import { Piscina } from 'piscina'
import type { BlobInput } from '../collections/index.js'
import { convertTape, type TapeVideo } from './tape-video.js'
import { makeThumbnail } from './thumbnail.js'

/**
 * Where the writer makes thumbnails and converts tapes: on worker threads, so that the main
 * thread (the writer's own work; in dev and benchmarks also the PDS) never runs sharp's
 * synchronous parts, and at most `threads` images are in sharp at once, leaving libuv's other
 * threads to file and crypto work. Same functions, same bytes as on the main thread.
 */
export interface MediaPool {
  /** Worker threads; 0 runs everything on the calling thread (the design before the pool). */
  readonly threads: number
  /** {@link makeThumbnail}: 512×512 PNG (or JPEG to fit `maxBytes`); rejects as it does. */
  thumbnail(image: Uint8Array, maxBytes: number): Promise<BlobInput>
  /** {@link convertTape} with its default options; rejects as it does (with the same messages). */
  convertTape(zip: Uint8Array): Promise<TapeVideo>
  /** Stops the workers (waiting for the tasks in hand). */
  close(): Promise<void>
}

/** Workers past the first stop after being idle this long; idle workers never keep the process alive. */
const IDLE_MS = 30_000

/**
 * A pool of `threads` workers (`piscina`); `threads` 0 gives the main-thread design. One worker
 * starts at once (loading sharp takes a second on a busy machine: a run killed every few seconds
 * must still make thumbnails), the others when there is work. Each takes one task at a time.
 */
export function createMediaPool(threads = os.availableParallelism()): MediaPool {
  if (threads === 0) return { threads, thumbnail: makeThumbnail, convertTape: (zip) => convertTape(zip), close: async () => {} }
  // From TypeScript source (tsx, vitest) a worker needs tsx registered first: see media-worker-source.mjs.
  const entry = import.meta.url.endsWith('.ts') ? './media-worker-source.mjs' : './media-worker.js'
  const pool = new Piscina({
    filename: new URL(entry, import.meta.url).href,
    minThreads: 1,
    maxThreads: threads,
    idleTimeout: IDLE_MS,
    concurrentTasksPerWorker: 1,
  })
  return {
    threads,
    thumbnail: (image, maxBytes) => pool.run({ image, maxBytes }, { name: 'thumbnail' }),
    convertTape: (zip) => pool.run({ zip }, { name: 'tape' }),
    close: () => pool.close(),
  }
}

const shared = new Map<number, MediaPool>()

/** One pool per thread count for the whole process (every writer context of a process shares it). */
export function sharedMediaPool(threads: number): MediaPool {
  let pool = shared.get(threads)
  if (!pool) shared.set(threads, (pool = createMediaPool(threads)))
  return pool
}

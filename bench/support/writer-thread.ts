/**
 * `writer backfill` on a thread of its own, for benchmarks. In production the writer is its own
 * process and the PDS another; in a benchmark the PDS runs in the benchmark's process, so a
 * writer on the main thread would queue its JavaScript behind the PDS's (and the PDS's behind
 * it), which no deployment does. As a worker, it loads the writer, says so, and on `start` runs
 * `runBackfill` with the configuration read from `workerData.env`, then posts back the report.
 */
import { once } from 'node:events'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { loadConfig } from '../../src/config.js'
import { createLogger } from '../../src/log.js'
import { runBackfill } from '../../src/services.js'
import type { BackfillReport } from '../../src/writer/backfill.js'

/**
 * Starts a thread named `writer` with the writer loaded (untimed); its `run` backfills as
 * configured by `env` and resolves to the report; `stop` ends the thread.
 */
export async function backfillThread(env: Record<string, string | undefined>): Promise<{ run(): Promise<BackfillReport>; stop(): Promise<void> }> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { env }, name: 'writer' })
  await once(worker, 'message') // loaded
  return {
    async run() {
      const report = once(worker, 'message')
      worker.postMessage('start')
      return (await report)[0] as BackfillReport
    },
    stop: async () => void (await worker.terminate()),
  }
}

if (!isMainThread && (workerData as { env?: Record<string, string> })?.env) {
  const { env } = workerData as { env: Record<string, string> }
  // `on`, not `once`: the listener keeps the thread (and its CPU count) alive until `stop`.
  parentPort!.on('message', async () => parentPort!.postMessage(await runBackfill(loadConfig(env), createLogger('warn'))))
  parentPort!.postMessage('loaded')
}

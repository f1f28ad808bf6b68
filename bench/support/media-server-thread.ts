/**
 * AC's object storage for benchmarks, on a thread of its own: in production the writer fetches
 * media from a remote service, so serving the files must not take the main thread, which the
 * benchmarked writer and the in-process PDS share. Run as a worker, it starts
 * src/dev/media-server.ts on `workerData.dir` and posts back its URL; its parent stops it by
 * terminating the worker.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { startMediaServer } from '../../src/dev/media-server.js'

/** Starts the media server for `dir` on a worker thread; resolves to its base URL and a close function. */
export async function startMediaServerThread(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { dir }, name: 'object-storage' })
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  return { url, close: async () => void (await worker.terminate()) }
}

if (!isMainThread && (workerData as { dir?: string })?.dir) {
  const server = await startMediaServer({ dir: (workerData as { dir: string }).dir })
  parentPort!.postMessage(server.url)
}

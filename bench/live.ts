/**
 * `npm run bench:live`: runs `writer live`, the ingest and the AppView against a local PDS and
 * MongoDB, then inserts, updates and nukes items in MongoDB at a steady rate and measures the
 * time from each MongoDB write until the change is visible through the AppView (XRPC over
 * HTTP). Prints p50, p95 and max per operation. Target: p95 under 2 s. Last line:
 * `BENCH_RESULT {"changes", "p50Ms", "p95Ms", "maxMs", …}` over all operations.
 *   LIVE_RATE=N        changes per second (default 4)
 *   LIVE_SECONDS=N     how long to write (default 30)
 */
import os from 'node:os'
import { ObjectId } from 'mongodb'
import { runLive } from '../src/services.js'
import { waitFor } from '../src/wait.js'
import { addUser } from '../test/support/ac.js'
import { startIndexing, startStack, xrpc } from '../test/support/stack.js'

const rate = Number(process.env.LIVE_RATE ?? 4)
const seconds = Number(process.env.LIVE_SECONDS ?? 30)

type Op = 'insert' | 'update' | 'nuke'

async function main() {
  const stack = await startStack()
  const user = await addUser(stack, 'latency')
  stack.cfg.WRITER_RECONCILE_SECONDS = 0
  const indexing = await startIndexing(stack)
  const live = await runLive(stack.cfg, stack.log)
  const latencies: Record<Op, number[]> = { insert: [], update: [], nuke: [] }
  const liveIds: ObjectId[] = []
  let n = 0

  const resolve = async (code: string) => xrpc(indexing.url, 'computer.aesthetic.media.resolveCode', { code: `$${code}` })
  const measure = async (op: Op, write: () => Promise<unknown>, visible: () => Promise<boolean>) => {
    const t0 = performance.now()
    await write()
    await waitFor(`${op} to be visible`, visible, 30_000, 20)
    latencies[op].push(performance.now() - t0)
  }

  const pending: Promise<void>[] = []
  const until = Date.now() + seconds * 1000
  while (Date.now() < until) {
    const i = n++
    const op: Op = i % 4 === 3 && liveIds.length > 2 ? 'nuke' : i % 4 === 2 && liveIds.length > 1 ? 'update' : 'insert'
    if (op === 'insert') {
      const _id = new ObjectId()
      const code = `b${i.toString(36)}`
      pending.push(
        measure(
          op,
          () => stack.mongo.collection('kidlisp').insertOne({ _id, code, source: `(wipe ${i})`, hash: `h${i}`, when: new Date(), user: user.sub }),
          async () => (await resolve(code)).status === 200,
        ).then(() => void liveIds.push(_id)),
      )
    } else {
      const _id = liveIds.shift()!
      const doc = await stack.mongo.collection('kidlisp').findOne({ _id })
      const source = `(ink ${i})`
      pending.push(
        op === 'update'
          ? measure(
              op,
              () => stack.mongo.collection('kidlisp').updateOne({ _id }, { $set: { source } }),
              async () => (await resolve(doc!.code)).body.item?.source === source,
            ).then(() => void liveIds.push(_id))
          : measure(
              op,
              () => stack.mongo.collection('kidlisp').updateOne({ _id }, { $set: { nuked: true } }),
              async () => (await resolve(doc!.code)).status === 400,
            ),
      )
    }
    await new Promise((r) => setTimeout(r, 1000 / rate))
  }
  await Promise.all(pending)

  const cpus = os.cpus()
  console.log(`\nlive latency: MongoDB write → visible through the AppView (${rate}/s for ${seconds} s)`)
  console.log(
    `machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  )
  const all = Object.values(latencies).flat()
  console.table(
    Object.fromEntries(
      [...Object.entries(latencies), ['all', all] as const].map(([op, xs]) => [
        op,
        { changes: xs.length, 'p50 ms': pct(xs, 0.5), 'p95 ms': pct(xs, 0.95), 'max ms': pct(xs, 1) },
      ]),
    ),
  )
  console.log(`target p95 < 2000 ms: ${pct(all, 0.95) < 2000 ? 'met' : 'NOT met'}`)
  const result = {
    changes: all.length,
    p50Ms: pct(all, 0.5),
    p95Ms: pct(all, 0.95),
    maxMs: pct(all, 1),
    ratePerS: rate,
    seconds,
    load1: +os.loadavg()[0].toFixed(2),
  }
  console.log(`BENCH_RESULT ${JSON.stringify(result)}`)
  await live.stop()
  await indexing.close()
  await stack.close()
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)])
}

await main()

/**
 * `npm run bench:rebuild`: how long rebuilding the index from the network takes, the way an
 * operator moves from SQLite to PostgreSQL (or replaces a lost index): AC's real scale (the
 * `--scale ac` sample: 979 repos, about 22,000 documents) mirrored into a local PDS by
 * `writer backfill`, then `ac-appview ingest` started on an empty index of each engine in
 * BENCH_BACKENDS (default `sqlite,postgres`; PostgreSQL: BENCH_POSTGRES_URL, an empty database,
 * else a throwaway server from Debian's package as the tests start it: loopback, fsync off). Its
 * first start lists every repo of the PDS, fetches each with getRepo, verifies it and indexes it;
 * timed from the process start until the backfill is done. Prints a table with the machine and
 * its load, then one `BENCH_RESULT <json>` line (`runs: [{ backend, seconds, repos, items }]`).
 *   BENCH_SCALE=small        the small sample (a quick check, not the benchmark)
 */
import { spawn } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { openIndex, type Backend } from '../src/db/index.js'
import { waitFor } from '../src/wait.js'
import { seedStack, startStack } from '../test/support/stack.js'
import { countRows } from './support/count-rows.js'

const BIN = path.resolve(import.meta.dirname, '../bin/ac-appview.js')
const scale = process.env.BENCH_SCALE === 'small' ? 'small' : 'ac'

interface Run {
  backend: Backend
  seconds: number
  repos: number
  items: number
}

/** The index of `target` once its backfill is done: repos done, items held. */
async function backfilled(target: string): Promise<{ repos: number; items: number } | undefined> {
  const db = openIndex(target, { poolSize: 1 })
  try {
    const run = await db.selectFrom('backfill').select('status').executeTakeFirst()
    if (run?.status !== 'done') return undefined
    return { repos: await countRows(db, 'repo'), items: await countRows(db, 'item') }
  } catch {
    return undefined // not migrated yet
  } finally {
    await db.destroy()
  }
}

async function main() {
  const backends = (process.env.BENCH_BACKENDS ?? 'sqlite,postgres').split(',').map((b) => b.trim()) as Backend[]
  const stack = await startStack()
  let pg: { url: string; stop(): Promise<void> } | undefined
  try {
    const seeded = Date.now()
    await seedStack(stack, { scale })
    await new Promise((resolve) =>
      spawn(process.execPath, [BIN, 'writer', 'backfill'], { env: { ...process.env, ...stack.env, LOG_LEVEL: 'warn' }, stdio: 'ignore' }).on('exit', resolve),
    )
    process.stderr.write(`seeded and mirrored (${scale}) in ${((Date.now() - seeded) / 1000).toFixed(0)} s; rebuilding…\n`)
    const loadBefore = os.loadavg()
    const runs: Run[] = []
    for (const backend of backends) {
      let env: Record<string, string>
      let target: string
      if (backend === 'sqlite') {
        target = path.join(stack.work, 'rebuilt.sqlite')
        env = { INDEX_DB_PATH: target }
      } else {
        pg ??= process.env.BENCH_POSTGRES_URL
          ? { url: process.env.BENCH_POSTGRES_URL, stop: async () => {} }
          : await (await import('../test/support/postgres.js')).startPostgres()
        target = pg.url
        env = { INDEX_DATABASE_URL: target }
      }
      const started = Date.now()
      const child = spawn(process.execPath, [BIN, 'ingest'], { env: { ...process.env, ...stack.env, ...env, LOG_LEVEL: 'warn' }, stdio: 'ignore' })
      let done: { repos: number; items: number } | undefined
      try {
        await waitFor(`the ${backend} rebuild`, async () => (done = await backfilled(target)) !== undefined, 3_600_000, 250)
      } finally {
        child.kill('SIGTERM')
        await new Promise((r) => child.once('exit', r))
      }
      runs.push({ backend, seconds: (Date.now() - started) / 1000, ...done! })
    }
    const loadAfter = os.loadavg()
    const cpus = os.cpus()
    const machine = `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, Node ${process.version}`
    const rows = runs.map(
      (r) =>
        `| ${r.backend.padEnd(8)} | ${r.repos.toLocaleString('en-US').padStart(5)} | ${r.items.toLocaleString('en-US').padStart(6)} | ${r.seconds.toFixed(1).padStart(7)} | ${Math.round(
          r.items / r.seconds,
        )
          .toLocaleString('en-US')
          .padStart(7)} |`,
    )
    process.stdout.write(
      [
        '',
        `index rebuilt from the network (bench/rebuild.ts): \`ac-appview ingest\` on an empty index, its first backfill of every repo of the PDS (${scale} sample), with verification`,
        `machine: ${machine}, load average (1 min) ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after (shared machine; the PDS runs on the same cores)`,
        '',
        '| backend  | repos |  items | seconds | items/s |',
        '|----------|-------|--------|---------|---------|',
        ...rows,
        '',
      ].join('\n'),
    )
    process.stdout.write(
      `BENCH_RESULT ${JSON.stringify({ bench: 'rebuild', machine, scale, load: { before: loadBefore[0], after: loadAfter[0] }, runs: runs.map((r) => ({ ...r, seconds: Number(r.seconds.toFixed(1)) })) })}\n`,
    )
  } finally {
    await pg?.stop()
    await stack.close()
  }
}

await main()

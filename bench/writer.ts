/**
 * `npm run bench:writer`: mirrors an AC-scale sample (AC's real counts, thumbnails included)
 * into a local PDS with rate limits off, then, in the same run, writes a slice of the same
 * items the way AC's scripts do (log in per record, createRecord, 10 at a time, thumbnail per
 * painting) and prints records/s for both and the ratio. Then it measures how fast a killed run
 * resumes: every mood is edited, `ac-appview writer backfill` runs as its own process and is
 * SIGKILLed halfway through, and a second run is timed from its start to its first write (the
 * point the first one had reached: the repos it finished are skipped, the rest compared again).
 * Last, the PDS's own ceiling for the same records (see {@link pdsCeiling}), and the writer's
 * rate as a fraction of it. The PDS and PLC run on the main thread, object storage and the writer
 * each on a thread of their own (in production they are separate services); all share the cores.
 * The script sets UV_THREADPOOL_SIZE=16 (unless set): with libuv's default 4 threads, the PDS's
 * password hashing (about 50 ms of CPU per login) and the writer's images held every thread, and
 * the PDS's file reads and writes queued behind them.
 *   BENCH_SCALE=small   use the small sample instead (a quick check, not the benchmark)
 *   BASELINE_ITEMS=N    items the baseline writes (default 600)
 *   BENCH_CPU_PROF=F    write a CPU profile of the main thread (the PDS's) during the backfill to F
 *   WRITER_MEDIA_THREADS=0  thumbnails and tapes on the writer's thread: the design before the pool
 * Last line: `BENCH_RESULT {"recordsPerS", "baselineRatio", "pdsCeilingFraction", "resumeSeconds", …}`.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import inspector from 'node:inspector/promises'
import os from 'node:os'
import path from 'node:path'
import { AtpAgent, lexToJson, lexicons } from '@atproto/api'
import { TID } from '@atproto/common-web'
import { AtUri } from '@atproto/syntax'
import { XrpcClient } from '@atproto/xrpc'
import { MongoClient } from 'mongodb'
import PQueue from 'p-queue'
import { mirrored, readDoc, type MirroredCollection, type SourceItem } from '../src/collections/index.js'
import { loadConfig } from '../src/config.js'
import { startMongo } from '../src/dev/mongo-server.js'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { seedSample } from '../src/dev/sample.js'
import type { Outcome } from '../src/writer/backfill.js'
import { createWriterContext } from '../src/writer/context.js'
import { MAX_WRITES_PER_CALL, type RepoWrite } from '../src/writer/repo.js'
import { startMediaServerThread } from './support/media-server-thread.js'
import { cpuSince, threadCpu } from './support/thread-cpu.js'
import { backfillThread } from './support/writer-thread.js'

const scale = process.env.BENCH_SCALE === 'small' ? 'small' : 'ac'
const baselineItems = Number(process.env.BASELINE_ITEMS ?? 600)

async function main() {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-bench-writer-'))
  const mongo = await startMongo({ dbName: 'bench' })
  const net = await startNetwork()
  await fs.mkdir(path.join(work, 'media'))
  const media = await startMediaServerThread(path.join(work, 'media'))
  const client = await MongoClient.connect(mongo.uri)
  const db = client.db(mongo.dbName)
  try {
    const seedStarted = Date.now()
    await seedSample({
      db,
      mediaDir: path.join(work, 'media'),
      storageUrl: (bucket) => `${media.url}/${bucket}`,
      pdsUrl: net.pdsUrl,
      createAccount: net.createAccount,
      scale,
    })
    const seedSeconds = (Date.now() - seedStarted) / 1000
    const env = {
      MONGODB_URI: mongo.uri,
      MONGODB_DB: mongo.dbName,
      PDS_URL: net.pdsUrl,
      AC_STORAGE_URL: `${media.url}/{bucket}`,
      DATA_DIR: path.join(work, 'data'),
      WRITER_CONCURRENCY: process.env.WRITER_CONCURRENCY ?? '4',
      WRITER_MEDIA_THREADS: process.env.WRITER_MEDIA_THREADS,
    }
    const cfg = loadConfig(env)

    // Baseline items are read before our writer runs, so they carry no back-references.
    const items = await baselineSlice(db, baselineItems)

    const writer = await backfillThread(env)
    const load = { writer: os.loadavg()[0], ceiling: 0 }
    const cpu0 = process.cpuUsage()
    const threads0 = threadCpu()
    const started = Date.now()
    const report = await profiled(process.env.BENCH_CPU_PROF, () => writer.run())
    const seconds = (Date.now() - started) / 1000
    const cpu = process.cpuUsage(cpu0)
    const threads = cpuSince(threads0, threadCpu())
    await writer.stop()
    load.writer = Math.max(load.writer, os.loadavg()[0])
    const written = Object.values(report.counts).reduce((n, c) => n + c.create + c.update, 0)
    const thumbnails = report.counts.painting.create + report.counts.painting.update
    const failed = Object.values(report.counts).reduce((n, c) => n + c.failed, 0)

    const baseStarted = Date.now()
    const baseWritten = await naiveBaseline(items, db, net.pdsUrl, createWriterContext(cfg))
    const baseSeconds = (Date.now() - baseStarted) / 1000

    const ours = written / seconds
    const theirs = baseWritten / baseSeconds
    const cpus = os.cpus()
    console.log(`\nwriter benchmark (${scale} sample, seeded in ${seedSeconds.toFixed(0)} s)`)
    console.log(
      `machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    )
    console.log(
      `writer: ${cfg.WRITER_CONCURRENCY} repos at once, thumbnails and tapes ${cfg.WRITER_MEDIA_THREADS ? `on ${cfg.WRITER_MEDIA_THREADS} worker threads` : "on the writer's thread (WRITER_MEDIA_THREADS=0, the previous design)"}; UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 'unset (4)'}`,
    )
    console.table([
      {
        writer: 'ac-appview backfill',
        records: written,
        thumbnails,
        failed,
        seconds: +seconds.toFixed(1),
        'records/s': +ours.toFixed(1),
        'cpu s (this process)': +((cpu.user + cpu.system) / 1e6).toFixed(1),
      },
      {
        writer: "AC's scripts (login per record, createRecord, 10 at a time)",
        records: baseWritten,
        thumbnails: items.filter((i) => i.col.kind === 'painting').length,
        failed: items.length - baseWritten,
        seconds: +baseSeconds.toFixed(1),
        'records/s': +theirs.toFixed(1),
      },
    ])
    console.log(
      `CPU seconds by thread during the backfill (live threads; MainThread: the PDS and PLC; WorkerThread: the media pool): ${threads.map(([name, s]) => `${name} ${s}`).join(', ')}`,
    )
    const reasons = new Map<string, number>()
    for (const p of report.problems.filter((p) => p.action === 'failed'))
      reasons.set(`${p.kind}: ${p.reason?.slice(0, 90)}`, (reasons.get(`${p.kind}: ${p.reason?.slice(0, 90)}`) ?? 0) + 1)
    for (const [reason, n] of reasons) console.log(`failed ×${n}: ${reason}`)
    console.log(
      `ratio: ${(ours / theirs).toFixed(1)}× the baseline; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB (PDS, PLC and writer in one process, the writer on a thread of its own)`,
    )

    const edited = await editMoods(db)
    const resume = await measureResume({ ...process.env, ...env })
    console.log(
      `\nresume after SIGKILL (${edited} moods edited): first run killed at ${resume.killedAt} after ${resume.firstRunSeconds.toFixed(1)} s; the restart wrote its first batch after ${resume.resumeSeconds.toFixed(1)} s (target < 5 s)`,
    )

    load.ceiling = os.loadavg()[0]
    const ceilingCpu0 = process.cpuUsage()
    const ceiling = await pdsCeiling(net, report.changes, cfg.WRITER_CONCURRENCY)
    const ceilingCpu = process.cpuUsage(ceilingCpu0)
    load.ceiling = Math.max(load.ceiling, os.loadavg()[0])
    const ceilingRate = ceiling.records / ceiling.seconds
    console.log(
      `\nthe PDS's applyWrites ceiling for the same records (${ceiling.repos} repos, batches of ${MAX_WRITES_PER_CALL}, ${cfg.WRITER_CONCURRENCY} repos at once, blobs already uploaded, sessions made beforehand)`,
    )
    console.table([
      {
        run: 'PDS applyWrites only',
        records: ceiling.records,
        seconds: +ceiling.seconds.toFixed(1),
        'records/s': +ceilingRate.toFixed(1),
        'cpu s (this process)': +((ceilingCpu.user + ceilingCpu.system) / 1e6).toFixed(1),
        load1: +load.ceiling.toFixed(2),
      },
      {
        run: 'ac-appview backfill',
        records: written,
        seconds: +seconds.toFixed(1),
        'records/s': +ours.toFixed(1),
        'cpu s (this process)': +((cpu.user + cpu.system) / 1e6).toFixed(1),
        load1: +load.writer.toFixed(2),
      },
    ])
    const ceilingCpuSeconds = (ceilingCpu.user + ceilingCpu.system) / 1e6
    const cpuFraction = ceilingCpuSeconds / ((cpu.user + cpu.system) / 1e6)
    console.log(
      `writer: ${((100 * ours) / ceilingRate).toFixed(0)} % of the PDS's ceiling (target ≥ 70 %); per CPU second of this process, less sensitive to the machine's other load: ${(100 * cpuFraction).toFixed(0)} %`,
    )
    console.log(
      'BENCH_RESULT ' +
        JSON.stringify({
          scale,
          recordsPerS: +ours.toFixed(1),
          baselineRecordsPerS: +theirs.toFixed(1),
          baselineRatio: +(ours / theirs).toFixed(2),
          pdsCeilingRecordsPerS: +ceilingRate.toFixed(1),
          pdsCeilingFraction: +(ours / ceilingRate).toFixed(2),
          pdsCeilingCpuFraction: +cpuFraction.toFixed(2),
          records: written,
          failed,
          resumeSeconds: +resume.resumeSeconds.toFixed(2),
          load1: +os.loadavg()[0].toFixed(2),
          loadWriter: +load.writer.toFixed(2),
          loadCeiling: +load.ceiling.toFixed(2),
        }),
    )
  } finally {
    await client.close()
    await media.close()
    await net.close()
    await mongo.stop()
    await fs.rm(work, { recursive: true, force: true })
  }
}

/** Appends ` (edited)` to every live mood (one update each: the test MongoDB has no pipeline updates); returns how many. */
async function editMoods(db: import('mongodb').Db): Promise<number> {
  const moods = db.collection('moods')
  const ops = (await moods.find({ deleted: { $ne: true } }, { projection: { mood: 1 } }).toArray()).map((m) => ({
    updateOne: { filter: { _id: m._id }, update: { $set: { mood: `${m.mood} (edited)` } } },
  }))
  return ops.length ? (await moods.bulkWrite(ops, { ordered: false })).modifiedCount : 0
}

/** Runs `fn`, writing a CPU profile of the main thread to `file` when one is asked for. */
async function profiled<T>(file: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (!file) return fn()
  const session = new inspector.Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
  try {
    return await fn()
  } finally {
    const { profile } = await session.post('Profiler.stop')
    await fs.writeFile(file, JSON.stringify(profile))
    session.disconnect()
  }
}

/**
 * The PDS's own `applyWrites` ceiling for the records the writer wrote (`changes`: its creates
 * and updates). Untimed: each repo's records are listed (their blobs are already in the repo) and
 * a session is made inside the PDS (no password hashing). Timed: the same records written again
 * as creates, in batches of {@link MAX_WRITES_PER_CALL}, `concurrency` repos at once, the
 * largest first, each at a sibling key (the writer's TID with another clock id, so the keys
 * spread through each repo's tree as the writer's did). The repos hold the writer's records
 * already, so their trees are up to twice as large as the writer found them: the ceiling errs low
 * by at most a level of the tree on the largest repos.
 */
async function pdsCeiling(net: LocalNetwork, changes: Outcome[], concurrency: number): Promise<{ records: number; seconds: number; repos: number }> {
  const wanted = new Map<string, Set<string>>()
  for (const c of changes) {
    if ((c.action !== 'create' && c.action !== 'update') || !c.uri) continue
    const did = new AtUri(c.uri).host
    wanted.set(did, (wanted.get(did) ?? new Set()).add(c.uri))
  }
  const pds = new XrpcClient({ service: net.pdsUrl }, lexicons)
  const accounts = net.network.pds.ctx.accountManager
  const jobs: Array<{ did: string; writes: RepoWrite[]; client: XrpcClient }> = []
  for (const [did, uris] of wanted) {
    const byCollection = new Map<string, Array<{ rkey: string; value: Record<string, unknown> }>>()
    for (const uri of uris) byCollection.set(new AtUri(uri).collection, [])
    const writes: RepoWrite[] = []
    for (const [collection, records] of byCollection) {
      const keys = new Set<string>()
      let cursor: string | undefined
      do {
        const res = await pds.call('com.atproto.repo.listRecords', { repo: did, collection, limit: 100, cursor })
        const page = res.data.records as Array<{ uri: string; value: Record<string, unknown> }>
        for (const r of page) {
          const rkey = new AtUri(r.uri).rkey
          keys.add(rkey)
          if (uris.has(r.uri)) records.push({ rkey, value: lexToJson(r.value as never) as Record<string, unknown> })
        }
        cursor = page.length ? res.data.cursor : undefined
      } while (cursor)
      for (const r of records) writes.push({ action: 'create', collection, rkey: siblingKey(r.rkey, keys), value: r.value })
    }
    const { accessJwt } = await accounts.createSession(did as `did:${string}:${string}`, null)
    const client = new XrpcClient({ service: net.pdsUrl, headers: { authorization: `Bearer ${accessJwt}` } }, lexicons)
    jobs.push({ did, writes, client })
  }
  jobs.sort((a, b) => b.writes.length - a.writes.length)
  const queue = new PQueue({ concurrency })
  let records = 0
  const started = Date.now()
  for (const job of jobs) {
    void queue.add(async () => {
      for (let i = 0; i < job.writes.length; i += MAX_WRITES_PER_CALL) {
        const batch = job.writes.slice(i, i + MAX_WRITES_PER_CALL)
        await job.client.call('com.atproto.repo.applyWrites', undefined, {
          repo: job.did,
          validate: false,
          writes: batch.map((w) => ({
            $type: 'com.atproto.repo.applyWrites#create',
            collection: w.collection,
            rkey: w.rkey,
            value: (w as { value: unknown }).value,
          })),
        })
        records += batch.length
      }
    })
  }
  await queue.onIdle()
  return { records, seconds: (Date.now() - started) / 1000, repos: jobs.length }
}

/** A TID beside `rkey` (same time, another clock id) that `taken` does not hold; added to `taken`. */
function siblingKey(rkey: string, taken: Set<string>): string {
  const tid = TID.fromStr(rkey)
  for (let flip = 1; flip < 1024; flip++) {
    const key = TID.fromTime(tid.timestamp(), tid.clockid() ^ flip).toString()
    if (!taken.has(key)) {
      taken.add(key)
      return key
    }
  }
  throw new Error(`no free key beside ${rkey}`)
}

const BIN = path.resolve(import.meta.dirname, '../bin/ac-appview.js')

/**
 * Runs `writer backfill` as its own process, SIGKILLs it once it reports half its items done,
 * then starts it again and times its start to its first `batch written` (debug log).
 */
async function measureResume(env: NodeJS.ProcessEnv): Promise<{ killedAt: string; firstRunSeconds: number; resumeSeconds: number }> {
  let killedAt = ''
  const started = Date.now()
  await runChild({ ...env, LOG_LEVEL: 'info' }, (line, child) => {
    const items = /"items":"(\d+)\/(\d+)"/.exec(line)
    if (items && Number(items[1]) >= Number(items[2]) / 2 && !killedAt) {
      killedAt = `${items[1]}/${items[2]} items`
      child.kill('SIGKILL')
    }
  })
  const firstRunSeconds = (Date.now() - started) / 1000
  const restarted = Date.now()
  let resumeSeconds = NaN
  await runChild({ ...env, LOG_LEVEL: 'debug' }, (line) => {
    if (Number.isNaN(resumeSeconds) && line.includes('"msg":"batch written"')) resumeSeconds = (Date.now() - restarted) / 1000
  })
  return { killedAt, firstRunSeconds, resumeSeconds }
}

function runChild(env: NodeJS.ProcessEnv, onLine: (line: string, child: ReturnType<typeof spawn>) => void): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'writer', 'backfill'], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let buffered = ''
    child.stderr!.on('data', (d) => {
      buffered += d
      const lines = buffered.split('\n')
      buffered = lines.pop()!
      for (const line of lines) onLine(line, child)
    })
    child.on('exit', () => resolve())
  })
}

interface BaselineItem {
  col: MirroredCollection
  item: SourceItem
  account: { did: string; password: string }
}

/** A slice of live items of every kind, in proportion, with their owners' credentials. */
async function baselineSlice(db: import('mongodb').Db, n: number): Promise<BaselineItem[]> {
  const users = new Map<string, { did: string; password: string }>()
  for await (const u of db.collection('users').find({ 'atproto.did': { $exists: true } })) users.set(String(u._id), u.atproto)
  const all: BaselineItem[] = []
  for (const col of mirrored) {
    for await (const doc of db.collection(col.mongo).find()) {
      try {
        const item = readDoc(col, doc)
        const account = users.get(item.owner ?? 'art-guest')
        if (item.live && account && !(col.kind === 'tape' && (item.fields as { mp4Status?: string }).mp4Status !== 'complete')) all.push({ col, item, account })
      } catch {
        // malformed documents are the writer's business, not the baseline's
      }
    }
  }
  const step = Math.max(1, Math.floor(all.length / n))
  return all.filter((_, i) => i % step === 0).slice(0, n)
}

/** AC's current approach: for each record, log in, make the thumbnail, createRecord; 10 at a time. */
async function naiveBaseline(items: BaselineItem[], _db: import('mongodb').Db, pdsUrl: string, ctx: ReturnType<typeof createWriterContext>): Promise<number> {
  const queue = new PQueue({ concurrency: 10 })
  let written = 0
  for (const { col, item, account } of items) {
    void queue.add(async () => {
      try {
        const agent = new AtpAgent({ service: pdsUrl })
        await agent.login({ identifier: account.did, password: account.password })
        const record: Record<string, unknown> = await col.toRecord(item, ctx)
        for (const blob of col.blobs) {
          const input = await blob.make(item, ctx).catch(() => null)
          if (input) record[blob.field] = (await agent.com.atproto.repo.uploadBlob(input.bytes, { encoding: input.mimeType })).data.blob
        }
        await agent.com.atproto.repo.createRecord({ repo: account.did, collection: col.nsid, record, validate: false })
        written++
      } catch (err) {
        console.error(`baseline: ${col.kind} ${item.id}: ${(err as Error).message}`)
      }
    })
  }
  await queue.onIdle()
  return written
}

await main()

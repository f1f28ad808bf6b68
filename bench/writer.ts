/**
 * `npm run bench:writer`: mirrors an AC-scale sample (AC's real counts, thumbnails included)
 * into a local PDS with rate limits off, then, in the same run, writes a slice of the same
 * items the way AC's scripts do (log in per record, createRecord, 10 at a time, thumbnail per
 * painting) and prints records/s for both and the ratio. Then it measures how fast a killed run
 * resumes: every mood is edited, `ac-appview writer backfill` runs as its own process and is
 * SIGKILLed halfway through, and a second run is timed from its start to its first write (the
 * point the first one had reached: the repos it finished are skipped, the rest compared again).
 *   BENCH_SCALE=small   use the small sample instead (a quick check, not the benchmark)
 *   BASELINE_ITEMS=N    items the baseline writes (default 600)
 * Last line: `BENCH_RESULT {"recordsPerS", "baselineRatio", "resumeSeconds", …}`.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import { MongoClient } from 'mongodb'
import PQueue from 'p-queue'
import { mirrored, readDoc, type MirroredCollection, type SourceItem } from '../src/collections/index.js'
import { loadConfig } from '../src/config.js'
import { startMediaServer } from '../src/dev/media-server.js'
import { startMongo } from '../src/dev/mongo-server.js'
import { startNetwork } from '../src/dev/network.js'
import { seedSample } from '../src/dev/sample.js'
import { createLogger } from '../src/log.js'
import { runBackfill } from '../src/services.js'
import { createWriterContext } from '../src/writer/context.js'

const scale = process.env.BENCH_SCALE === 'small' ? 'small' : 'ac'
const baselineItems = Number(process.env.BASELINE_ITEMS ?? 600)

async function main() {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-bench-writer-'))
  const log = createLogger('warn')
  const mongo = await startMongo({ dbName: 'bench' })
  const net = await startNetwork()
  await fs.mkdir(path.join(work, 'media'))
  const media = await startMediaServer({ dir: path.join(work, 'media') })
  const client = await MongoClient.connect(mongo.uri)
  const db = client.db(mongo.dbName)
  try {
    const seedStarted = Date.now()
    await seedSample({ db, mediaDir: path.join(work, 'media'), storageUrl: media.storageUrl, pdsUrl: net.pdsUrl, createAccount: net.createAccount, scale })
    const seedSeconds = (Date.now() - seedStarted) / 1000
    const cfg = loadConfig({
      MONGODB_URI: mongo.uri,
      MONGODB_DB: mongo.dbName,
      PDS_URL: net.pdsUrl,
      AC_STORAGE_URL: `${media.url}/{bucket}`,
      DATA_DIR: path.join(work, 'data'),
      WRITER_CONCURRENCY: process.env.WRITER_CONCURRENCY ?? '4',
    })

    // Baseline items are read before our writer runs, so they carry no back-references.
    const items = await baselineSlice(db, baselineItems)

    const cpu0 = process.cpuUsage()
    const started = Date.now()
    const report = await runBackfill(cfg, log)
    const seconds = (Date.now() - started) / 1000
    const cpu = process.cpuUsage(cpu0)
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
    console.log(`machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
    console.table([
      { writer: 'ac-appview backfill', records: written, thumbnails, failed, seconds: +seconds.toFixed(1), 'records/s': +ours.toFixed(1), 'cpu s (this process)': +((cpu.user + cpu.system) / 1e6).toFixed(1) },
      { writer: "AC's scripts (login per record, createRecord, 10 at a time)", records: baseWritten, thumbnails: items.filter((i) => i.col.kind === 'painting').length, failed: items.length - baseWritten, seconds: +baseSeconds.toFixed(1), 'records/s': +theirs.toFixed(1) },
    ])
    const reasons = new Map<string, number>()
    for (const p of report.problems.filter((p) => p.action === 'failed')) reasons.set(`${p.kind}: ${p.reason?.slice(0, 90)}`, (reasons.get(`${p.kind}: ${p.reason?.slice(0, 90)}`) ?? 0) + 1)
    for (const [reason, n] of reasons) console.log(`failed ×${n}: ${reason}`)
    console.log(`ratio: ${(ours / theirs).toFixed(1)}× the baseline; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB (PDS, PLC and writer in one process)`)

    const edited = (await db.collection('moods').updateMany({ deleted: { $ne: true } }, [{ $set: { mood: { $concat: ['$mood', ' (edited)'] } } }])).modifiedCount
    const resume = await measureResume({ ...process.env, MONGODB_URI: mongo.uri, MONGODB_DB: mongo.dbName, PDS_URL: net.pdsUrl, AC_STORAGE_URL: `${media.url}/{bucket}`, DATA_DIR: path.join(work, 'data'), WRITER_CONCURRENCY: cfg.WRITER_CONCURRENCY.toString() })
    console.log(`\nresume after SIGKILL (${edited} moods edited): first run killed at ${resume.killedAt} after ${resume.firstRunSeconds.toFixed(1)} s; the restart wrote its first batch after ${resume.resumeSeconds.toFixed(1)} s (target < 5 s)`)
    console.log(
      'BENCH_RESULT ' +
        JSON.stringify({ scale, recordsPerS: +ours.toFixed(1), baselineRecordsPerS: +theirs.toFixed(1), baselineRatio: +(ours / theirs).toFixed(2), records: written, failed, resumeSeconds: +resume.resumeSeconds.toFixed(2), load1: +os.loadavg()[0].toFixed(2) }),
    )
  } finally {
    await client.close()
    await media.close()
    await net.close()
    await mongo.stop()
    await fs.rm(work, { recursive: true, force: true })
  }
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

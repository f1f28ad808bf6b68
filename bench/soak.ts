/**
 * `npm run bench:soak`: AC's real scale (the `--scale ac` sample: 979 repos, about 22,000
 * documents) mirrored by `writer backfill`, then the service as AC deploys it, split the way a
 * bigger deployment would be (`ac-appview start --only writer`, `--only ingest`, `--only appview`:
 * one process each, so each part's memory is its own), with changes arriving for SOAK_MINUTES:
 * inserts, edits, nukes and un-nukes of every kind and handle changes, and a reconcile pass
 * every 60 s. Each change is timed from its MongoDB write until the AppView shows it.
 *
 * The rate: AC's counts over time (its data model notes) give about 53 changes a day: KidLisp
 * 10,543 → 14,677 in 92 days (45/day), paintings 3,903 → 4,386 in about 120 days (4/day),
 * handles 2,676 → 2,796 in 92 days (1.3/day), moods 2,805 and pieces 265 over AC's four years
 * (2 and 0.2/day), a few tapes. 10× that is 0.4 changes a minute, too few for a latency
 * percentile per minute, so changes arrive at least SOAK_MIN_PER_MINUTE (default 30) a minute,
 * in AC's proportions (every kind at least 2 %): edits are 10 %, nukes 5 %, un-nukes 2 % of them.
 *
 * Prints one row per minute (changes, latency p50/p95/max, whether a reconcile pass ran, RSS of
 * each part, ledger and index size on disk), then `writer audit` and a comparison of the index
 * with every repo's `listRecords`. Last line: `BENCH_RESULT {"minutes", "p95MaxMs",
 * "rssGrowthPct", "auditClean", "indexEqual", …}`.
 *   SOAK_MINUTES=N           minutes of changes (default 20)
 *   SOAK_MIN_PER_MINUTE=N    floor on the change rate (default 30)
 *   BENCH_SCALE=small        the small sample (a quick check, not the benchmark)
 */
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import getPort from 'get-port'
import { ObjectId, type Collection, type Db, type Document } from 'mongodb'
import { collections } from '../src/collections/index.js'
import { openIndex } from '../src/db/index.js'
import { waitFor } from '../src/wait.js'
import { spawnCli } from '../test/support/children.js'
import { seedStack, startStack, type Stack } from '../test/support/stack.js'
import { countRows } from './support/count-rows.js'

const minutes = Number(process.env.SOAK_MINUTES ?? 20)
const minPerMinute = Number(process.env.SOAK_MIN_PER_MINUTE ?? 30)
const scale = process.env.BENCH_SCALE === 'small' ? 'small' : 'ac'
const ADMIN = 'soak-admin-password'
const M = 'computer.aesthetic.media'

/** Changes a day at AC (see above), by kind; handle changes apart. */
const AC_PER_DAY = { kidlisp: 45, painting: 4, mood: 2, piece: 0.2, tape: 0.1, handle: 1.3 } as const
type Kind = keyof typeof AC_PER_DAY

const BUCKETS = { painting: 'paintings', mood: 'moods', piece: 'pieces', kidlisp: 'kidlisp', tape: 'tapes' } as const

interface Sample {
  kind: Kind
  op: string
  ms: number
  minute: number
}

async function main() {
  const stack = await startStack()
  const children: ChildProcess[] = []
  try {
    const seedStarted = Date.now()
    await seedStack(stack, { scale })
    const port = await getPort()
    const url = `http://127.0.0.1:${port}`
    const writerMetricsPort = await getPort()
    const env = { ...process.env, ...stack.env, PORT: String(port), ADMIN_PASSWORD: ADMIN, WRITER_RECONCILE_SECONDS: '60', LOG_LEVEL: 'warn' }
    const backfillStarted = Date.now()
    await new Promise((resolve) => spawnCli(['writer', 'backfill'], { env, stdio: 'ignore' }).on('exit', resolve))
    console.log(
      `seeded (${scale}) in ${((backfillStarted - seedStarted) / 1000).toFixed(0)} s; writer backfill in ${((Date.now() - backfillStarted) / 1000).toFixed(0)} s`,
    )

    const parts: Record<string, ChildProcess> = {}
    for (const part of ['writer', 'ingest', 'appview']) {
      const child = spawnCli(['start', '--only', part], {
        env: { ...env, ...(part === 'writer' ? { METRICS_PORT: String(writerMetricsPort) } : {}) },
        stdio: ['ignore', 'ignore', 'inherit'],
      })
      parts[part] = child
      children.push(child)
    }
    const mirrored = await mirroredCount(stack.mongo)
    await waitFor('the AppView', async () => (await fetch(`${url}/xrpc/_health`).catch(() => undefined)) !== undefined, 120_000)
    await waitFor("the writer's metrics", async () => (await reconcilePasses(writerMetricsPort).catch(() => -1)) >= 0, 120_000)
    await waitFor(`the index to hold the ${mirrored} mirrored items`, async () => (await indexCount(stack.cfg.indexDbPath)) >= mirrored, 600_000, 1000)
    console.log(`index caught up: ${mirrored} items; soaking for ${minutes} min\n`)

    const changes = new ChangeMaker(stack, url)
    await changes.prepare()
    const samples: Sample[] = []
    const errors: Array<{ minute: number; message: string }> = []
    const rows: Array<Record<string, string | number>> = []
    const rss: Record<string, number[]> = { writer: [], ingest: [], appview: [] }
    let passes = await reconcilePasses(writerMetricsPort)
    const perMinute = Math.max(minPerMinute, (Object.values(AC_PER_DAY).reduce((a, b) => a + b, 0) * 10 * 1.17) / 1440)
    const soakStarted = Date.now()
    const inFlight: Promise<void>[] = []
    for (let minute = 0; minute < minutes; minute++) {
      const minuteEnds = soakStarted + (minute + 1) * 60_000
      for (let i = 0; Date.now() < minuteEnds; i++) {
        inFlight.push(
          changes.random(minute).then(
            (s) => void (s && samples.push(s)),
            (err: Error) => void errors.push({ minute, message: err.message }),
          ),
        )
        await new Promise((r) => setTimeout(r, Math.min((60_000 / perMinute) * (0.5 + Math.random()), Math.max(0, minuteEnds - Date.now()))))
      }
      const now = await reconcilePasses(writerMetricsPort)
      for (const [part, child] of Object.entries(parts)) rss[part].push(rssMb(child.pid!))
      const got = samples
        .filter((s) => s.minute === minute)
        .map((s) => s.ms)
        .sort((a, b) => a - b)
      rows.push({
        minute: minute + 1,
        changes: got.length,
        errors: errors.filter((e) => e.minute === minute).length,
        'p50 ms': pct(got, 0.5),
        'p95 ms': pct(got, 0.95),
        'max ms': got.at(-1) ?? 0,
        reconcile: now > passes ? 'yes' : '',
        'writer MB': rss.writer.at(-1)!,
        'ingest MB': rss.ingest.at(-1)!,
        'appview MB': rss.appview.at(-1)!,
        'ledger MB': sizeMb(path.join(stack.cfg.DATA_DIR, 'writer.sqlite')),
        'index MB': sizeMb(stack.cfg.indexDbPath),
      })
      passes = now
      console.log(
        Object.entries(rows.at(-1)!)
          .map(([k, v]) => `${k} ${v}`)
          .join(' | '),
      )
    }
    await Promise.all(inFlight)

    // A last reconcile pass, then everything must agree.
    const last = await reconcilePasses(writerMetricsPort)
    await waitFor('a last reconcile pass', async () => (await reconcilePasses(writerMetricsPort)) > last, 180_000, 1000)
    for (const child of Object.values(parts)) child.kill('SIGTERM')
    await Promise.all(Object.values(parts).map((c) => new Promise((r) => (c.exitCode === null ? c.once('exit', r) : r(null)))))
    const audit = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawnCli(['writer', 'audit'], { env, stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      child.stdout!.on('data', (d) => (out += d))
      child.on('exit', (code) => resolve({ code, out }))
    })
    const index = await compareIndex(stack, stack.cfg.indexDbPath)

    const cpus = os.cpus()
    console.log(
      `\nsoak: ${scale} sample, ${minutes} min, ${perMinute.toFixed(0)} changes/min (10× AC's rate is ${((Object.values(AC_PER_DAY).reduce((a, b) => a + b, 0) * 10 * 1.17) / 1440).toFixed(2)}/min), reconcile every 60 s`,
    )
    console.log(
      `machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    )
    console.table(rows)
    const byOp = new Map<string, number[]>()
    for (const s of samples) byOp.set(`${s.op} ${s.kind}`, [...(byOp.get(`${s.op} ${s.kind}`) ?? []), s.ms])
    console.table(
      [...byOp].map(([op, ms]) => ({
        change: op,
        n: ms.length,
        'p50 ms': pct(
          ms.sort((a, b) => a - b),
          0.5,
        ),
        'p95 ms': pct(ms, 0.95),
        'max ms': ms.at(-1),
      })),
    )
    for (const e of errors.slice(0, 5)) console.log(`change error (minute ${e.minute + 1}): ${e.message}`)
    console.log(`writer audit: ${audit.code === 0 ? 'clean' : `NOT clean\n${audit.out}`}`)
    console.log(`index vs repos: ${index.equal ? 'equal' : `DIFFERENT: ${index.detail}`} (${index.records} records in ${index.repos} repos)`)
    const growth = Object.fromEntries(
      Object.entries(rss).map(([part, mb]) => [part, mb.length > 5 ? +(((Math.max(...mb.slice(5)) - mb[4]) / mb[4]) * 100).toFixed(1) : 0]),
    )
    console.log(
      `RSS growth after minute 5: ${Object.entries(growth)
        .map(([p, g]) => `${p} ${g}%`)
        .join(', ')}`,
    )
    const all = samples.map((s) => s.ms).sort((a, b) => a - b)
    console.log(
      'BENCH_RESULT ' +
        JSON.stringify({
          scale,
          minutes,
          changes: samples.length,
          changeErrors: errors.length,
          changesPerMinute: +perMinute.toFixed(1),
          p50Ms: pct(all, 0.5),
          p95Ms: pct(all, 0.95),
          p95MaxMs: Math.max(...rows.map((r) => Number(r['p95 ms']))),
          maxMs: all.at(-1) ?? 0,
          reconcileMinutes: rows.filter((r) => r.reconcile).length,
          rssGrowthPct: Math.max(...Object.values(growth)),
          rssGrowthPctByPart: growth,
          auditClean: audit.code === 0,
          indexEqual: index.equal,
          load1: +os.loadavg()[0].toFixed(2),
        }),
    )
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
    await stack.close()
  }
}

/**
 * Makes one change at a time in AC's proportions and measures how long the AppView takes to show
 * it: inserts (copies of existing items with fresh ids and codes), edits, nukes, un-nukes of every
 * kind, and handle changes (seen through getProfile). Tapes are not edited (AC never changes a
 * tape's slug: it names the frame ZIP in storage). Moods and pieces have no code to look them up
 * by, so their edits and nukes pick among those this soak inserted: they are on the first page of
 * their owner's feed, and their text is unique.
 */
class ChangeMaker {
  private readonly nuked: Record<string, Document[]> = {}
  private readonly inserted: Record<string, Document[]> = {}
  private owners: Array<{ sub: string; did: string }> = []
  private n = 0

  constructor(
    private readonly stack: Stack,
    private readonly url: string,
  ) {}

  async prepare() {
    for await (const u of this.stack.mongo.collection('users').find({ 'atproto.did': { $exists: true }, _id: { $ne: 'art-guest' as never } }))
      this.owners.push({ sub: String(u._id), did: u.atproto.did })
  }

  /** One random change; resolves with its latency once visible (undefined when there was nothing to change). */
  async random(minute: number): Promise<Sample | undefined> {
    const weights = Object.entries(AC_PER_DAY).map(([k, w]) => [k, Math.max(w / 52.6, 0.02)] as const)
    let r = Math.random() * weights.reduce((a, [, w]) => a + w, 0)
    const kind = weights.find(([, w]) => (r -= w) < 0)?.[0] ?? 'kidlisp'
    const roll = Math.random()
    const edit = kind === 'tape' ? 'insert' : 'edit' // AC never edits a tape (see ChangeMaker)
    const op = kind === 'handle' ? 'handle' : roll < 0.1 ? edit : roll < 0.15 ? 'nuke' : roll < 0.17 ? 'un-nuke' : 'insert'
    const started = Date.now()
    const visible = await this.apply(kind as Kind, op)
    if (!visible) return undefined
    await waitFor(`${op} ${kind}`, visible, 60_000, 25)
    return { kind: kind as Kind, op, ms: Date.now() - started, minute }
  }

  private async apply(kind: Kind, op: string): Promise<(() => Promise<boolean>) | undefined> {
    const db = this.stack.mongo
    if (kind === 'handle') {
      const owner = this.owners[Math.floor(Math.random() * this.owners.length)]
      const handle = `soak${(this.n++).toString(36)}${Math.random().toString(36).slice(2, 6)}`
      await db.collection('@handles').updateOne({ _id: owner.sub as never }, { $set: { handle, updatedAt: new Date() } }, { upsert: true })
      return async () => ((await this.xrpc('computer.aesthetic.actor.getProfile', { actor: owner.did })).handle ?? '').startsWith(`${handle}.`)
    }
    const collection = db.collection(BUCKETS[kind])
    const live = { ...(kind === 'mood' ? { deleted: { $ne: true } } : { nuked: { $ne: true } }), 'atproto.cid': { $exists: true } }
    const byFeed = kind === 'mood' || kind === 'piece'
    if (byFeed && (op === 'edit' || op === 'nuke')) {
      const mine = this.inserted[kind] ?? []
      const doc = mine.splice(Math.floor(Math.random() * mine.length), 1)[0]
      return doc ? this.change(kind, op, doc) : this.apply(kind, 'insert')
    }
    const [doc] = await randomDocs(collection, live, 1)
    if (!doc) return undefined
    if (op === 'un-nuke') {
      const back = this.nuked[kind]?.shift()
      if (!back) return undefined
      await collection.updateOne({ _id: back._id }, { $unset: { nuked: '', deleted: '' } })
      return this.shows(kind, back, true)
    }
    if (op === 'nuke' || op === 'edit') return this.change(kind, op, doc)
    const copy: Document = { ...doc, _id: new ObjectId(), when: new Date() }
    delete copy.atproto
    delete copy.at
    if (kind === 'mood') copy.mood = `soak mood ${this.n++}`
    if (copy.code !== undefined) copy.code = `z${(this.n++).toString(36)}${Math.random().toString(36).slice(2, 5)}`.slice(0, 10)
    if (kind === 'kidlisp') copy.hash = `soak-${copy.code}`
    if (kind === 'piece') copy.slug = `soak-piece-${this.n++}`
    await collection.insertOne(copy)
    if (byFeed) (this.inserted[kind] ??= []).push(copy)
    return this.shows(kind, copy, true)
  }

  /** Nukes or edits `doc`; resolves to the check that the AppView shows it. */
  private async change(kind: keyof typeof BUCKETS, op: 'nuke' | 'edit', doc: Document): Promise<() => Promise<boolean>> {
    const collection = this.stack.mongo.collection(BUCKETS[kind])
    if (op === 'nuke') {
      await collection.updateOne({ _id: doc._id }, { $set: kind === 'mood' ? { deleted: true } : { nuked: true } })
      ;(this.nuked[kind] ??= []).push(doc)
      return this.shows(kind, doc, false)
    }
    const edit = editOf(kind, doc, this.n++)
    await collection.updateOne({ _id: doc._id }, { $set: edit })
    if (kind === 'mood' || kind === 'piece') (this.inserted[kind] ??= []).push({ ...doc, ...edit })
    return this.shows(kind, { ...doc, ...edit }, true)
  }

  /** Whether the AppView shows `doc` (as it is now) or, with `present` false, no longer shows it. */
  private shows(kind: Kind, doc: Document, present: boolean): () => Promise<boolean> {
    const prefix = { painting: '#', kidlisp: '$', tape: '!' }[kind as string]
    if (prefix) {
      return async () => {
        const res = await this.xrpc(`${M}.resolveCode`, { code: `${prefix}${doc.code}` })
        if (!present) return res.error === 'NotFound'
        return kind === 'kidlisp' ? res.item?.source === doc.source : res.item?.slug === doc.slug
      }
    }
    const owner = this.owners.find((o) => o.sub === doc.user)?.did
    const text = kind === 'mood' ? doc.mood : doc.slug
    return async () => {
      if (!owner) return true
      const res = await this.xrpc(`${M}.getAuthorFeed`, { actor: owner, kind, limit: 100 })
      const found = (res.items ?? []).some((i: { mood?: string; slug?: string }) => (kind === 'mood' ? i.mood : i.slug) === text)
      return found === present
    }
  }

  private async xrpc(nsid: string, params: Record<string, string | number>): Promise<any> {
    const q = new URLSearchParams(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])))
    return (await fetch(`${this.url}/xrpc/${nsid}?${q}`)).json()
  }
}

/** `n` random documents matching `filter` (by random skips: mongo-java-server's `$sample` can fail its sort). */
async function randomDocs(collection: Collection, filter: Document, n: number): Promise<Document[]> {
  const count = await collection.countDocuments(filter)
  const docs: Document[] = []
  for (let i = 0; i < Math.min(n, count); i++)
    docs.push(
      ...(await collection
        .find(filter)
        .skip(Math.floor(Math.random() * count))
        .limit(1)
        .toArray()),
    )
  return docs
}

/** An edit of one field the record carries: a mood's text, a KidLisp source, a painting's recording slug, a piece's slug. */
function editOf(kind: Kind, doc: Document, n: number): Document {
  if (kind === 'mood') return { mood: `${doc.mood} (edit ${n})` }
  if (kind === 'kidlisp') return { source: `${doc.source} ; edit ${n}` }
  if (kind === 'painting') return { slug: `${String(doc.slug).split(':')[0]}:soak${n}` } // a recording slug: the PNG stays the same
  return { slug: `${String(doc.slug).slice(0, 90)}-e${n}` }
}

/** Live items whose owner has a PDS account: what the writer mirrors and the index must hold. */
async function mirroredCount(db: Db): Promise<number> {
  let n = 0
  for (const c of Object.values(BUCKETS)) n += await db.collection(c).countDocuments({ 'atproto.cid': { $exists: true } })
  return n
}

async function indexCount(file: string): Promise<number> {
  if (!fs.existsSync(file)) return 0
  const db = openIndex(file)
  try {
    return await countRows(db, 'item')
  } catch {
    return 0
  } finally {
    await db.destroy()
  }
}

/** Every repo's records of every AC kind (listRecords) against the index's items. */
async function compareIndex(stack: Stack, file: string): Promise<{ equal: boolean; detail: string; records: number; repos: number }> {
  const agent = stack.net.network.pds.getAgent()
  const want = new Map<string, string>()
  const dids: string[] = []
  for await (const u of stack.mongo.collection('users').find({ 'atproto.did': { $exists: true } })) dids.push(u.atproto.did)
  for (const did of dids) {
    for (const { nsid } of collections) {
      let cursor: string | undefined
      do {
        const res = await agent.com.atproto.repo.listRecords({ repo: did, collection: nsid, limit: 100, cursor })
        for (const r of res.data.records) want.set(r.uri, r.cid)
        cursor = res.data.records.length ? res.data.cursor : undefined
      } while (cursor)
    }
  }
  const db = openIndex(file)
  const rows = await db.selectFrom('item').select(['uri', 'cid']).execute()
  await db.destroy()
  const have = new Map(rows.map((r) => [r.uri, r.cid]))
  const missing = [...want].filter(([uri, cid]) => have.get(uri) !== cid)
  const extra = [...have.keys()].filter((uri) => !want.has(uri))
  return {
    equal: !missing.length && !extra.length,
    detail: `${missing.length} missing or stale, ${extra.length} extra; e.g. ${[...missing.map(([u]) => u), ...extra].slice(0, 3).join(' ')}`,
    records: want.size,
    repos: dids.length,
  }
}

async function reconcilePasses(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text()
  return Number(/^writer_reconcile_passes_total (\d+)/m.exec(text)?.[1] ?? 0)
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
}

function sizeMb(file: string): number {
  const size = [file, `${file}-wal`].reduce((n, f) => n + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0)
  return Math.round((size / 1024 / 1024) * 10) / 10
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0
}

await main()

/**
 * `npm run bench:ingest`: how fast the ingest replays a firehose, with and without verification,
 * and what the post filter (posts about AC, src/ingest/posts.ts) costs.
 *
 * 1. Starts a local PLC and PDS (src/dev/network.ts) and 50 accounts.
 * 2. Fills the PDS's firehose with BENCH_COMMITS (default 50,000) single-record commits spread
 *    round-robin over the accounts, 90% `app.bsky.feed.post` (of which 5% link an AC painting, with
 *    a link facet, and the rest are other people's posts of 20-280 characters) and 10%
 *    `computer.aesthetic.*` (the five kinds, some in AC's legacy mood shape). The PDS writes one commit in ~35 ms on this
 *    machine, so 50,000 through its API would take half an hour; instead the bench builds each
 *    commit with `@atproto/repo` (real MST, signed with the account's own PDS signing key) and
 *    sequences it through the PDS's own sequencer, which then serves it on its real
 *    `com.atproto.sync.subscribeRepos`. (The actor store does not hold these records: getRepo and
 *    listRecords would not show them; the replay does not need them.)
 * 3. Runs `ac-appview ingest --cursor 0` as a child process (the real CLI, its own index) until its
 *    cursor reaches the PDS's last seq, for each index engine in BENCH_BACKENDS (default
 *    `sqlite,postgres`): on SQLite verified with the post filter on (the default: commits verified
 *    on the worker pool, INGEST_VERIFY_THREADS as configured, default the cores), the same with
 *    INGEST_VERIFY_THREADS=0 (on the main thread, the design before the pool), verified with
 *    INGEST_POSTS=false, and with INGEST_VERIFY=false; on PostgreSQL verified and unverified (a
 *    fresh database each, on BENCH_POSTGRES_URL's server, else a throwaway server from Debian's
 *    package as the tests start it: loopback, fsync off); reads the child's CPU time and peak RSS
 *    from /proc (all its threads: the verify workers' CPU is counted), and counts the events it
 *    refused (its log's "event failed verification or parsing" lines; every event of this stream
 *    is valid, so any is a transient failure, e.g. a DID lookup timing out, and its records lost
 *    to the replay: the PDS's actor store does not hold them for the re-fetch). TRUSTED_PDS names another host, so the stream is treated as a relay's: posts
 *    without an AC link are other people's, and the filter must drop them all.
 * 4. Failover on PostgreSQL: the same replay by two ingest processes on one index (one leads, one
 *    stands by, src/ingest/leader.ts); the leader is SIGKILLed {@link KILLS} times during it, a new
 *    standby replacing it each time; each failover is timed from the kill to the first commit of
 *    the new leader (the cursor row written), and the replay must still reach the last seq.
 * 5. Times the post filter's decision alone (`PostIndex.wants`, before any decoding) over every
 *    post commit of the stream, as the firehose delivers them: the cost of each dropped event.
 * 6. Prints a table with the machine (CPU model, cores, Node, load) and the ratios, then one
 *    `BENCH_RESULT <json>` line: the top-level figures are SQLite's (as before), `backends` holds
 *    `{ backend, verifiedEventsPerS, unverifiedEventsPerS }` per engine (verified: with the pool),
 *    `verifiedMainThreadEventsPerS` SQLite's rate without it, and `failover` the seconds of each
 *    failover.
 *
 * BENCH_COMMITS and BENCH_REPOS change the size; BENCH_INGEST_NODE_OPTIONS is passed to the ingest
 * process only (e.g. `--max-old-space-size=160` to show its memory is bounded).
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { TID } from '@atproto/common-web'
import type { Keypair } from '@atproto/crypto'
import { sequencer as pdsSequencer } from '@atproto/pds'
import { MemoryBlockstore, Repo, WriteOpAction } from '@atproto/repo'
import { decode as cborDecode } from '@atproto/lex-cbor'
import { sql } from 'kysely'
import { migrateIndex, openIndex, type Backend } from '../src/db/index.js'
import { saveCursor } from '../src/db/store.js'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { PostIndex } from '../src/ingest/posts.js'
import { wsUrl } from '../src/ingest/subscription.js'
import type { CommitBody } from '../src/ingest/verify.js'
import { createLogger } from '../src/log.js'
import { serviceId } from '../src/redact.js'
import { countRows } from './support/count-rows.js'

const COMMITS = Number(process.env.BENCH_COMMITS ?? 50_000)
const REPOS = Number(process.env.BENCH_REPOS ?? 50)
const AC_SHARE = 0.1
/** Share of the posts that link an AC painting. */
const AC_LINK_SHARE = 0.05
const ROOT = path.resolve(import.meta.dirname, '..')
/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s. */
const CLOCK_TICKS = 100
/** Leader kills of the failover run. */
const KILLS = 5
/** INGEST_FAILOVER_SECONDS of the failover run (the default). */
const FAILOVER_SECONDS = 10

interface Account {
  did: string
  keypair: Keypair
  repo: Repo
}

interface RunResult {
  backend: Backend
  mode: string
  posts: boolean
  events: number
  acRecords: number
  acPosts: number
  seconds: number
  cpuSeconds: number
  peakRssMb: number
  /** Events the ingest refused (failed verification or parsing, then re-fetched), and their distinct reasons. */
  refused: number
  refusals: string[]
}

/**
 * The i-th AC record: painting, mood, piece, KidLisp in turn (tapes need a video blob, which
 * these synthetic repos do not hold); every 7th mood in AC's legacy shape (`text`, `mongoId`).
 */
function acRecord(i: number): { collection: string; record: Record<string, unknown> } {
  const when = new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString()
  const ref = i.toString(16).padStart(24, '0')
  const code = `b${i.toString(36)}`.slice(0, 10)
  switch (i % 4) {
    case 0:
      return {
        collection: 'computer.aesthetic.painting',
        record: {
          slug: `2025.1.1.${i}`,
          code,
          imageUrl: `https://aesthetic.computer/media/paintings/${code}.png`,
          acUrl: `https://aesthetic.computer/#${code}`,
          when,
          ref,
        },
      }
    case 1:
      return {
        collection: 'computer.aesthetic.mood',
        record: i % 7 === 1 ? { text: `legacy mood ${i}`, when, mongoId: ref } : { mood: `mood ${i}`, when, ref },
      }
    case 2:
      return { collection: 'computer.aesthetic.piece', record: { slug: `piece-${i}`, when, ref } }
    default:
      return {
        collection: 'computer.aesthetic.kidlisp',
        record: { source: `(wipe ${i % 255})\n(ink red)\n(box 0 0 ${i % 64} ${i % 64})`, code, acUrl: `https://aesthetic.computer/$${code}`, when, ref },
      }
  }
}

/** One signed single-record commit on `acc`'s repo, formatted as the PDS sequencer stores it. */
async function commitEvent(acc: Account, collection: string, record: Record<string, unknown>) {
  const rkey = TID.nextStr()
  const prevData = acc.repo.commit.data
  const commit = await acc.repo.formatCommit(
    { action: WriteOpAction.Create, collection: collection as `${string}.${string}.${string}`, rkey, record: { $type: collection, ...record } },
    acc.keypair,
  )
  acc.repo = await acc.repo.applyCommit(commit)
  const cid = await acc.repo.data.get(`${collection}/${rkey}`)
  return pdsSequencer.formatSeqCommit(acc.repo.did, { ...commit, ops: [{ action: 'create', path: `${collection}/${rkey}`, cid }], prevData } as never)
}

const WORDS = [
  'the',
  'tonight',
  'pixels',
  'coffee',
  'rain',
  'music',
  'a',
  'new',
  'drawing',
  'of',
  'my',
  'cat',
  'and',
  'so',
  'much',
  'light',
  'today',
  'is',
  'good',
]

/**
 * The i-th post: one in twenty links AC painting `code` in its text, with a link facet, as a
 * Bluesky client writes it; the others are 20-280 characters of plain text.
 */
function postRecord(i: number, code: string): Record<string, unknown> {
  const createdAt = new Date().toISOString()
  if ((i * 31337) % 1000 < AC_LINK_SHARE * 1000) {
    const url = `https://aesthetic.computer/#${code}`
    const text = `made this on AC ${url}`
    const start = Buffer.byteLength('made this on AC ')
    return {
      text,
      facets: [{ index: { byteStart: start, byteEnd: start + Buffer.byteLength(url) }, features: [{ $type: 'app.bsky.richtext.facet#link', uri: url }] }],
      langs: ['en'],
      createdAt,
    }
  }
  const words: string[] = []
  for (let n = 0, len = 20 + ((i * 104729) % 260); words.join(' ').length < len; n++) words.push(WORDS[(i + n * 7) % WORDS.length])
  return { text: `post ${i}: ${words.join(' ')}`.slice(0, 280), langs: ['en'], createdAt }
}

/**
 * Creates the accounts and sequences COMMITS commits; returns the AC record and AC-linking post
 * counts, and the encoded post commits (as the firehose sends their bodies) for timing the filter.
 */
async function fill(net: LocalNetwork): Promise<{ ac: number; acPosts: number; postCommits: Uint8Array[]; seconds: number }> {
  const started = Date.now()
  const ctx = net.network.pds.ctx
  const accounts: Account[] = []
  for (let i = 0; i < REPOS; i++) {
    const { did } = await net.createAccount(`bench${i}`)
    const keypair = await ctx.actorStore.keypair(did)
    accounts.push({ did, keypair, repo: await Repo.create(new MemoryBlockstore(), did, keypair) })
  }
  let ac = 0
  let acPosts = 0
  const postCommits: Uint8Array[] = []
  let batch: unknown[] = []
  for (let i = 0; i < COMMITS; i++) {
    const acc = accounts[i % accounts.length]
    const isAc = (i * 7919) % 100 < AC_SHARE * 100
    const { collection, record } = isAc
      ? acRecord(ac)
      : { collection: 'app.bsky.feed.post', record: postRecord(i, `b${(4 * Math.floor(ac / 4)).toString(36)}`) }
    if (isAc) ac++
    else if (record.facets) acPosts++
    const evt = await commitEvent(acc, collection, record)
    if (!isAc) postCommits.push(evt.event)
    batch.push(evt)
    if (batch.length === 500 || i === COMMITS - 1) {
      await ctx.sequencer.sequenceEvts(batch as never)
      batch = []
      if ((i + 1) % 10_000 === 0) process.stderr.write(`  ${i + 1} commits\n`)
    }
  }
  return { ac, acPosts, postCommits, seconds: (Date.now() - started) / 1000 }
}

/**
 * Microseconds `PostIndex.wants` takes per post commit, over every post commit of the stream as
 * the firehose delivers its body (frame decoding is the ingest's with or without the filter), for
 * untrusted authors, as on a relay; and how many it let through.
 */
async function timeFilter(postCommits: Uint8Array[]): Promise<{ microsPerEvent: number; passed: number }> {
  const db = openIndex(':memory:')
  await migrateIndex(db)
  const filter = await PostIndex.load(db, 'https://aesthetic.computer', createLogger('silent'))
  const bodies = postCommits.map((bytes) => cborDecode(bytes) as unknown as CommitBody)
  let passed = 0
  for (const body of bodies) if (filter.wants(body, false)) passed++ // warm-up
  const started = process.hrtime.bigint()
  for (let round = 0; round < 5; round++) for (const body of bodies) filter.wants(body, false)
  const micros = Number(process.hrtime.bigint() - started) / 1000 / (5 * bodies.length)
  await db.destroy()
  return { microsPerEvent: micros, passed }
}

/** utime + stime of `pid` in seconds, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

/** A fresh, migrated index of one engine for one run: where it is, and the environment naming it. */
interface RunIndex {
  target: string
  env: Record<string, string>
}

/** The engines' empty indexes: SQLite files in `work`; PostgreSQL databases on one server (BENCH_POSTGRES_URL's, else a throwaway one). */
async function indexes(work: string) {
  let pg: { url: string; stop(): Promise<void> } | undefined
  let n = 0
  return {
    async fresh(backend: Backend): Promise<RunIndex> {
      const name = `replay_${++n}`
      if (backend === 'sqlite') {
        const target = path.join(work, `${name}.sqlite`)
        return { target, env: { INDEX_DB_PATH: target } }
      }
      if (!pg) {
        if (process.env.BENCH_POSTGRES_URL) pg = { url: process.env.BENCH_POSTGRES_URL, stop: async () => {} }
        else pg = await (await import('../test/support/postgres.js')).startPostgres()
      }
      const admin = openIndex(pg.url, { poolSize: 1 })
      await sql`create database ${sql.id(name)}`.execute(admin)
      await admin.destroy()
      const target = pg.url.replace(/\/[^/?]*(\?.*)?$/, `/${name}$1`)
      return { target, env: { INDEX_DATABASE_URL: target } }
    },
    stop: () => pg?.stop(),
  }
}

/** The environment of the ingest processes of a replay (the stream treated as a relay's: see the header). */
function ingestEnv(net: LocalNetwork, index: RunIndex, verify: boolean, posts: boolean): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NODE_OPTIONS: process.env.BENCH_INGEST_NODE_OPTIONS ?? '',
    PDS_URL: net.pdsUrl,
    PLC_URL: net.plcUrl,
    HANDLE_RESOLVER_URL: net.pdsUrl,
    ALLOW_PRIVATE_NETWORK: 'true',
    TRUSTED_PDS: 'https://pds.aesthetic.computer', // another host: this stream is other people's, as a relay's is
    ...index.env,
    LOG_LEVEL: 'info',
    INGEST_VERIFY: String(verify),
    INGEST_POSTS: String(posts),
    INGEST_FAILOVER_SECONDS: String(FAILOVER_SECONDS),
  }
}

/** `ac-appview ingest` (with `args`) as a child process; `log()` is its stderr so far. */
function spawnIngest(env: NodeJS.ProcessEnv, args: string[] = []) {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/ac-appview.js'), 'ingest', ...args], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d: Buffer) => (log += d.toString()))
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  return { child, log: () => log, exited }
}

/** The cursor row of the index (seq, and when it was written), read every `ms` until `done` says so. */
async function pollCursor(target: string, done: (row: { seq: number; updatedAt: string }) => boolean, ms = 100): Promise<void> {
  const db = openIndex(target, { poolSize: 1 })
  try {
    for (;;) {
      const row = await db
        .selectFrom('cursor')
        .select(['seq', 'updatedAt'])
        .executeTakeFirst()
        .catch(() => undefined) // tables created by the ingest
      if (row && done(row)) return
      await new Promise((r) => setTimeout(r, ms))
    }
  } finally {
    await db.destroy()
  }
}

/** Runs `ac-appview ingest --cursor 0` on a fresh index of `backend` until its cursor reaches `head`; measures it. */
async function replay(
  net: LocalNetwork,
  head: number,
  backend: Backend,
  verify: boolean,
  posts: boolean,
  index: RunIndex,
  mainThread = false,
): Promise<RunResult> {
  const mode = `${verify ? 'verified' : 'unverified'}, posts ${posts ? 'on' : 'off'}${mainThread ? ', on the main thread' : ''}`
  process.stderr.write(`  ${backend}, ${mode}…\n`)
  const p = spawnIngest({ ...ingestEnv(net, index, verify, posts), ...(mainThread ? { INGEST_VERIFY_THREADS: '0' } : {}) }, ['--cursor', '0'])
  await new Promise<void>((resolve, reject) => {
    p.child.stderr.on('data', () => p.log().includes('firehose connected') && resolve())
    p.child.once('exit', (code) => reject(new Error(`ingest exited with ${code}: ${p.log().slice(-2000)}`)))
  })
  const started = process.hrtime.bigint()
  const cpuStart = await cpuSeconds(p.child.pid!)
  await pollCursor(index.target, (row) => row.seq >= head)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const result = { cpu: (await cpuSeconds(p.child.pid!)) - cpuStart, rss: await peakRssMb(p.child.pid!) }
  const db = openIndex(index.target, { poolSize: 1 })
  const acRecords = await countRows(db, 'item')
  const acPosts = await countRows(db, 'post')
  await db.destroy()
  p.child.kill('SIGTERM')
  await p.exited
  const refusals = p
    .log()
    .split('\n')
    .filter((l) => l.includes('event failed verification or parsing'))
    .map((l) => String(JSON.parse(l).err))
  if (refusals.length) process.stderr.write(`  ${refusals.length} events refused: ${[...new Set(refusals)].slice(0, 5).join('; ')}\n`)
  return {
    backend,
    mode,
    posts,
    events: head,
    acRecords,
    acPosts,
    seconds,
    cpuSeconds: result.cpu,
    peakRssMb: result.rss,
    refused: refusals.length,
    refusals: [...new Set(refusals)].slice(0, 5),
  }
}

/**
 * The replay by a leader and a standby on one PostgreSQL index, the leader SIGKILLed up to
 * {@link KILLS} times (every 1.5-3 s, while the replay has more than 5 % to go) and replaced by a
 * new standby; resolves to the seconds from each kill to the new leader's first commit, once the
 * replay reached `head`.
 */
async function failover(net: LocalNetwork, head: number, index: RunIndex): Promise<number[]> {
  process.stderr.write(`  postgres, failover: ${KILLS} leader kills during the replay…\n`)
  const db = openIndex(index.target, { poolSize: 1 })
  await migrateIndex(db)
  await saveCursor(db, serviceId(wsUrl(net.pdsUrl)), 0, null, new Date().toISOString()) // resume "from 0": a replay, as --cursor 0 gives one process
  await db.destroy()
  const env = ingestEnv(net, index, true, true)
  const leading = (p: ReturnType<typeof spawnIngest>) => p.log().includes('ingest leading')
  const until = async (what: string, check: () => boolean) => {
    for (const start = Date.now(); !check(); await new Promise((r) => setTimeout(r, 20)))
      if (Date.now() - start > 60_000) throw new Error(`timed out waiting for ${what}`)
  }
  const procs = [spawnIngest(env)]
  await until('the first leader', () => leading(procs[0]))
  procs.push(spawnIngest(env))
  await until('the standby', () => procs[1].log().includes('ingest standing by'))
  const seconds: number[] = []
  try {
    for (let k = 0; k < KILLS; k++) {
      await new Promise((r) => setTimeout(r, 1500 + Math.random() * 1500))
      let seq = 0
      await pollCursor(index.target, (row) => ((seq = row.seq), true))
      if (seq > head * 0.95) break // the replay is (nearly) over: a kill now would not be mid-stream
      const [leader, standby] = procs.slice(-2)
      const killed = Date.now()
      leader.child.kill('SIGKILL')
      await leader.exited
      await pollCursor(index.target, (row) => Date.parse(row.updatedAt) > killed, 10)
      seconds.push((Date.now() - killed) / 1000)
      await until('the standby to say it leads', () => leading(standby))
      procs.push(spawnIngest(env))
      await until('a new standby', () => procs.at(-1)!.log().includes('ingest standing by'))
    }
    await pollCursor(index.target, (row) => row.seq >= head)
  } finally {
    for (const p of procs) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
  }
  return seconds
}

function table(rows: RunResult[]): string {
  const header = [
    'backend',
    'mode',
    'events',
    'seconds',
    'events/s',
    'AC records',
    'posts about AC',
    'AC records/s',
    'CPU s',
    'CPU µs/event',
    'peak RSS MB',
    'refused',
  ]
  const cells = rows.map((r) => [
    r.backend,
    r.mode,
    String(r.events),
    r.seconds.toFixed(1),
    Math.round(r.events / r.seconds).toLocaleString('en-US'),
    String(r.acRecords),
    String(r.acPosts),
    Math.round(r.acRecords / r.seconds).toLocaleString('en-US'),
    r.cpuSeconds.toFixed(1),
    Math.round((r.cpuSeconds * 1e6) / r.events).toString(),
    r.peakRssMb.toFixed(0),
    String(r.refused),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]) => '| ' + c.map((v, i) => (i < 2 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join(' | ') + ' |'
  return [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.map(line)].join('\n')
}

/** The runs of one engine: SQLite's three (as before issue 13) and the verified one without the verify pool, PostgreSQL's verified and unverified. */
const MODES: Record<Backend, Array<{ verify: boolean; posts: boolean; mainThread?: boolean }>> = {
  sqlite: [
    { verify: true, posts: true },
    { verify: true, posts: true, mainThread: true },
    { verify: true, posts: false },
    { verify: false, posts: true },
  ],
  postgres: [
    { verify: true, posts: true },
    { verify: false, posts: true },
  ],
}

/** Target of issue 13: verified events/s on PostgreSQL. */
const POSTGRES_TARGET = 2000

async function main() {
  const backends = (process.env.BENCH_BACKENDS ?? 'sqlite,postgres').split(',').map((b) => b.trim()) as Backend[]
  for (const b of backends) if (b !== 'sqlite' && b !== 'postgres') throw new Error(`BENCH_BACKENDS: unknown engine ${b} (sqlite, postgres)`)
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-bench-ingest-'))
  const net = await startNetwork()
  const stores = await indexes(work)
  try {
    process.stderr.write(`filling the PDS: ${REPOS} repos, ${COMMITS} commits…\n`)
    const filled = await fill(net)
    const head = (await net.network.pds.ctx.sequencer.curr()) ?? 0
    process.stderr.write(`filled in ${filled.seconds.toFixed(0)} s: ${head} events, ${filled.ac} AC records, ${filled.acPosts} posts linking AC; replaying…\n`)
    const loadBefore = os.loadavg()
    const runs: RunResult[] = []
    for (const backend of backends)
      for (const m of MODES[backend]) runs.push(await replay(net, head, backend, m.verify, m.posts, await stores.fresh(backend), m.mainThread))
    const failovers = backends.includes('postgres') ? await failover(net, head, await stores.fresh('postgres')) : []
    const filter = await timeFilter(filled.postCommits)
    const rate = (r: RunResult) => r.events / r.seconds
    const cpuPerEvent = (r: RunResult) => (r.cpuSeconds * 1e6) / r.events
    const find = (backend: Backend, verify: boolean, posts = true) =>
      runs.find((r) => r.backend === backend && r.mode === `${verify ? 'verified' : 'unverified'}, posts ${posts ? 'on' : 'off'}`)
    const cpu = os.cpus()
    const machine = `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, Node ${process.version}`
    const loadAfter = os.loadavg()
    const lines = [
      '',
      `ingest replay from cursor 0 (bench/ingest.ts): ${REPOS} repos, ${head} firehose events (${COMMITS} commits), ${filled.ac} AC records, ${filled.acPosts} of ${filled.postCommits.length} posts linking AC`,
      `machine: ${machine}, load average (1 min) ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after (shared machine)`,
      `engines: ${backends.map((b) => (b === 'sqlite' ? 'SQLite (WAL, synchronous=NORMAL)' : `PostgreSQL ${process.env.BENCH_POSTGRES_URL ? '(BENCH_POSTGRES_URL)' : "(Debian's server on loopback, fsync and synchronous_commit off, as in the tests)"}, the ingest writing through its leader session`)).join('; ')}`,
      '',
      table(runs),
      '',
    ]
    for (const backend of backends) {
      const [verified, unverified, noPosts] = [find(backend, true), find(backend, false), find(backend, true, false)]
      if (verified && unverified)
        lines.push(
          `${backend}: verified / unverified events/s: ${(rate(verified) / rate(unverified)).toFixed(2)}${noPosts ? `; post filter on / off events/s: ${(rate(verified) / rate(noPosts)).toFixed(2)} (CPU µs/event ${cpuPerEvent(verified).toFixed(0)} vs ${cpuPerEvent(noPosts).toFixed(0)})` : ''}`,
        )
    }
    const mainThread = runs.find((r) => r.backend === 'sqlite' && r.mode.endsWith('on the main thread'))
    const pooled = find('sqlite', true)
    if (mainThread && pooled)
      lines.push(
        `sqlite verified: verify pool / main thread events/s: ${(rate(pooled) / rate(mainThread)).toFixed(2)} (CPU µs/event ${cpuPerEvent(pooled).toFixed(0)} vs ${cpuPerEvent(mainThread).toFixed(0)}; INGEST_VERIFY_THREADS ${process.env.INGEST_VERIFY_THREADS ?? `default, ${os.availableParallelism()}`})`,
      )
    const [sqliteVerified, pgVerified] = [find('sqlite', true), find('postgres', true)]
    if (sqliteVerified && pgVerified) lines.push(`postgres / sqlite verified events/s: ${(rate(pgVerified) / rate(sqliteVerified)).toFixed(2)}`)
    if (pgVerified)
      lines.push(
        `postgres verified: ${Math.round(rate(pgVerified)).toLocaleString('en-US')} events/s, target ≥ ${POSTGRES_TARGET.toLocaleString('en-US')}: ${rate(pgVerified) >= POSTGRES_TARGET ? 'met' : 'MISSED'}`,
      )
    if (failovers.length) {
      const sorted = [...failovers].sort((a, b) => a - b)
      lines.push(
        `failover on postgres (leader SIGKILLed → the standby's first commit), ${failovers.length} kills during a replay: ${failovers.map((x) => x.toFixed(2)).join(', ')} s (median ${sorted[Math.floor(sorted.length / 2)].toFixed(2)}, max ${sorted.at(-1)!.toFixed(2)}; INGEST_FAILOVER_SECONDS ${FAILOVER_SECONDS})`,
      )
    }
    lines.push(
      `post filter decision (PostIndex.wants, before any decoding): ${filter.microsPerEvent.toFixed(2)} µs per post commit; ${filter.passed} of ${filled.postCommits.length} passed it (decoded, verified), the rest dropped`,
      `the PDS serving the stream runs in the bench process on the same cores; CPU and RSS are the ingest process's alone`,
      '',
    )
    process.stdout.write(lines.join('\n'))
    const runResult = (r: RunResult) => ({
      mode: r.mode,
      posts: r.posts,
      seconds: r.seconds,
      eventsPerSecond: Math.round(rate(r)),
      cpuMicrosPerEvent: Math.round(cpuPerEvent(r)),
      acRecords: r.acRecords,
      acPosts: r.acPosts,
      peakRssMb: Math.round(r.peakRssMb),
      refused: r.refused,
      refusals: r.refusals,
    })
    const headline = backends.includes('sqlite') ? 'sqlite' : backends[0]
    const result = {
      bench: 'ingest',
      machine,
      load: { before: loadBefore[0], after: loadAfter[0] },
      events: head,
      postsLinkingAc: filled.acPosts,
      // The headline figures (issue 12) are SQLite's when it ran, else the first engine's.
      verifiedEventsPerS: Math.round(rate(find(headline, true)!)),
      unverifiedEventsPerS: Math.round(rate(find(headline, false)!)),
      runs: runs.filter((r) => r.backend === 'sqlite').map(runResult),
      ...(mainThread ? { verifiedMainThreadEventsPerS: Math.round(rate(mainThread)) } : {}),
      postFilter: { microsPerDroppedEvent: Number(filter.microsPerEvent.toFixed(2)), passed: filter.passed, postCommits: filled.postCommits.length },
      backends: backends.map((backend) => ({
        backend,
        verifiedEventsPerS: Math.round(rate(find(backend, true)!)),
        unverifiedEventsPerS: Math.round(rate(find(backend, false)!)),
        runs: runs.filter((r) => r.backend === backend).map(runResult),
      })),
      ...(failovers.length ? { failover: { seconds: failovers.map((x) => Number(x.toFixed(2))), failoverSecondsSetting: FAILOVER_SECONDS } } : {}),
    }
    process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`)
  } finally {
    await net.close()
    await stores.stop()
    await fs.rm(work, { recursive: true, force: true })
  }
}

await main()

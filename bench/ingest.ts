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
 *    cursor reaches the PDS's last seq: verified with the post filter on (the default), verified
 *    with INGEST_POSTS=false, and with INGEST_VERIFY=false; reads the child's CPU time and peak RSS
 *    from /proc. TRUSTED_PDS names another host, so the stream is treated as a relay's: posts
 *    without an AC link are other people's, and the filter must drop them all.
 * 4. Times the post filter's decision alone (`PostIndex.wants`, before any decoding) over every
 *    post commit of the stream, as the firehose delivers them: the cost of each dropped event.
 * 5. Prints a table with the machine (CPU model, cores, Node, load) and the ratios, then one
 *    `BENCH_RESULT <json>` line.
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
import SqliteDb from 'better-sqlite3'
import { migrateIndex, openIndex } from '../src/db/index.js'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { PostIndex } from '../src/ingest/posts.js'
import type { CommitBody } from '../src/ingest/verify.js'
import { createLogger } from '../src/log.js'

const COMMITS = Number(process.env.BENCH_COMMITS ?? 50_000)
const REPOS = Number(process.env.BENCH_REPOS ?? 50)
const AC_SHARE = 0.1
/** Share of the posts that link an AC painting. */
const AC_LINK_SHARE = 0.05
const ROOT = path.resolve(import.meta.dirname, '..')
/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s. */
const CLOCK_TICKS = 100

interface Account {
  did: string
  keypair: Keypair
  repo: Repo
}

interface RunResult {
  mode: string
  posts: boolean
  events: number
  acRecords: number
  acPosts: number
  seconds: number
  cpuSeconds: number
  peakRssMb: number
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
      return { collection: 'computer.aesthetic.painting', record: { slug: `2025.1.1.${i}`, code, imageUrl: `https://aesthetic.computer/media/paintings/${code}.png`, acUrl: `https://aesthetic.computer/#${code}`, when, ref } }
    case 1:
      return { collection: 'computer.aesthetic.mood', record: i % 7 === 1 ? { text: `legacy mood ${i}`, when, mongoId: ref } : { mood: `mood ${i}`, when, ref } }
    case 2:
      return { collection: 'computer.aesthetic.piece', record: { slug: `piece-${i}`, when, ref } }
    default:
      return { collection: 'computer.aesthetic.kidlisp', record: { source: `(wipe ${i % 255})\n(ink red)\n(box 0 0 ${i % 64} ${i % 64})`, code, acUrl: `https://aesthetic.computer/$${code}`, when, ref } }
  }
}

/** One signed single-record commit on `acc`'s repo, formatted as the PDS sequencer stores it. */
async function commitEvent(acc: Account, collection: string, record: Record<string, unknown>) {
  const rkey = TID.nextStr()
  const prevData = acc.repo.commit.data
  const commit = await acc.repo.formatCommit({ action: WriteOpAction.Create, collection: collection as `${string}.${string}.${string}`, rkey, record: { $type: collection, ...record } }, acc.keypair)
  acc.repo = await acc.repo.applyCommit(commit)
  const cid = await acc.repo.data.get(`${collection}/${rkey}`)
  return pdsSequencer.formatSeqCommit(acc.repo.did, { ...commit, ops: [{ action: 'create', path: `${collection}/${rkey}`, cid }], prevData } as never)
}

const WORDS = ['the', 'tonight', 'pixels', 'coffee', 'rain', 'music', 'a', 'new', 'drawing', 'of', 'my', 'cat', 'and', 'so', 'much', 'light', 'today', 'is', 'good']

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
    return { text, facets: [{ index: { byteStart: start, byteEnd: start + Buffer.byteLength(url) }, features: [{ $type: 'app.bsky.richtext.facet#link', uri: url }] }], langs: ['en'], createdAt }
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
    const { collection, record } = isAc ? acRecord(ac) : { collection: 'app.bsky.feed.post', record: postRecord(i, `b${(4 * Math.floor(ac / 4)).toString(36)}`) }
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

/** Runs `ac-appview ingest --cursor 0` until its cursor reaches `head`; measures it. */
async function replay(net: LocalNetwork, head: number, verify: boolean, posts: boolean, work: string): Promise<RunResult> {
  const mode = `${verify ? 'verified' : 'unverified'}, posts ${posts ? 'on' : 'off'}`
  const index = path.join(work, `index-${verify}-${posts}.sqlite`)
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/ac-appview.js'), 'ingest', '--cursor', '0'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_OPTIONS: process.env.BENCH_INGEST_NODE_OPTIONS ?? '',
      PDS_URL: net.pdsUrl,
      PLC_URL: net.plcUrl,
      HANDLE_RESOLVER_URL: net.pdsUrl,
      ALLOW_PRIVATE_NETWORK: 'true',
      TRUSTED_PDS: 'https://pds.aesthetic.computer', // another host: this stream is other people's, as a relay's is
      INDEX_DB_PATH: index,
      LOG_LEVEL: 'info',
      INGEST_VERIFY: String(verify),
      INGEST_POSTS: String(posts),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  const connected = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => d.toString().includes('firehose connected') && resolve())
    child.once('exit', (code) => reject(new Error(`ingest exited with ${code}`)))
  })
  await connected
  const started = process.hrtime.bigint()
  const cpuStart = await cpuSeconds(child.pid!)
  let db: SqliteDb.Database | undefined
  for (;;) {
    await new Promise((r) => setTimeout(r, 100))
    db ??= await fs.access(index).then(() => new SqliteDb(index, { readonly: true, fileMustExist: true }), () => undefined)
    const row = db?.prepare('select seq from cursor').get() as { seq: number } | undefined
    if (row && row.seq >= head) break
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const result = { cpu: (await cpuSeconds(child.pid!)) - cpuStart, rss: await peakRssMb(child.pid!) }
  const count = (table: string) => (db!.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n
  const acRecords = count('item')
  const acPosts = count('post')
  db!.close()
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  return { mode, posts, events: head, acRecords, acPosts, seconds, cpuSeconds: result.cpu, peakRssMb: result.rss }
}

function table(rows: RunResult[]): string {
  const header = ['mode', 'events', 'seconds', 'events/s', 'AC records', 'posts about AC', 'AC records/s', 'CPU s', 'CPU µs/event', 'peak RSS MB']
  const cells = rows.map((r) => [
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
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]) => '| ' + c.map((v, i) => v.padStart(widths[i])).join(' | ') + ' |'
  return [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.map(line)].join('\n')
}

async function main() {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-bench-ingest-'))
  const net = await startNetwork()
  try {
    process.stderr.write(`filling the PDS: ${REPOS} repos, ${COMMITS} commits…\n`)
    const filled = await fill(net)
    const head = (await net.network.pds.ctx.sequencer.curr()) ?? 0
    process.stderr.write(`filled in ${filled.seconds.toFixed(0)} s: ${head} events, ${filled.ac} AC records, ${filled.acPosts} posts linking AC; replaying…\n`)
    const loadBefore = os.loadavg()
    const runs = [await replay(net, head, true, true, work), await replay(net, head, true, false, work), await replay(net, head, false, true, work)]
    const filter = await timeFilter(filled.postCommits)
    const [withPosts, withoutPosts, unverified] = runs
    const rate = (r: RunResult) => r.events / r.seconds
    const cpuPerEvent = (r: RunResult) => (r.cpuSeconds * 1e6) / r.events
    const cpu = os.cpus()
    const machine = `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, Node ${process.version}`
    const loadAfter = os.loadavg()
    process.stdout.write(
      [
        '',
        `ingest replay from cursor 0 (bench/ingest.ts): ${REPOS} repos, ${head} firehose events (${COMMITS} commits), ${filled.ac} AC records, ${filled.acPosts} of ${filled.postCommits.length} posts linking AC`,
        `machine: ${machine}, load average (1 min) ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after (shared machine)`,
        '',
        table(runs),
        '',
        `verified / unverified events/s: ${(rate(withPosts) / rate(unverified)).toFixed(2)}; post filter on / off events/s: ${(rate(withPosts) / rate(withoutPosts)).toFixed(2)} (CPU µs/event ${cpuPerEvent(withPosts).toFixed(0)} vs ${cpuPerEvent(withoutPosts).toFixed(0)})`,
        `post filter decision (PostIndex.wants, before any decoding): ${filter.microsPerEvent.toFixed(2)} µs per post commit; ${filter.passed} of ${filled.postCommits.length} passed it (decoded, verified), the rest dropped`,
        `the PDS serving the stream runs in the bench process on the same cores; CPU and RSS are the ingest process's alone`,
        '',
      ].join('\n'),
    )
    const result = {
      bench: 'ingest',
      machine,
      load: { before: loadBefore[0], after: loadAfter[0] },
      events: head,
      postsLinkingAc: filled.acPosts,
      runs: runs.map((r) => ({ mode: r.mode, posts: r.posts, seconds: r.seconds, eventsPerSecond: Math.round(rate(r)), cpuMicrosPerEvent: Math.round(cpuPerEvent(r)), acRecords: r.acRecords, acPosts: r.acPosts, peakRssMb: Math.round(r.peakRssMb) })),
      postFilter: { microsPerDroppedEvent: Number(filter.microsPerEvent.toFixed(2)), passed: filter.passed, postCommits: filled.postCommits.length },
    }
    process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`)
  } finally {
    await net.close()
    await fs.rm(work, { recursive: true, force: true })
  }
}

await main()

/**
 * `npm run bench:ingest`: how fast the ingest replays a firehose, with and without verification.
 *
 * 1. Starts a local PLC and PDS (src/dev/network.ts) and 50 accounts.
 * 2. Fills the PDS's firehose with BENCH_COMMITS (default 50,000) single-record commits spread
 *    round-robin over the accounts, 90% `app.bsky.feed.post` and 10% `computer.aesthetic.*`
 *    (the five kinds, some in AC's legacy mood shape). The PDS writes one commit in ~35 ms on this
 *    machine, so 50,000 through its API would take half an hour; instead the bench builds each
 *    commit with `@atproto/repo` (real MST, signed with the account's own PDS signing key) and
 *    sequences it through the PDS's own sequencer, which then serves it on its real
 *    `com.atproto.sync.subscribeRepos`. (The actor store does not hold these records: getRepo and
 *    listRecords would not show them; the replay does not need them.)
 * 3. Runs `ac-appview ingest --cursor 0` as a child process (the real CLI, its own index) until its
 *    cursor reaches the PDS's last seq, once with verification (the default) and once with
 *    INGEST_VERIFY=false; reads the child's CPU time and peak RSS from /proc.
 * 4. Prints a table with the machine (CPU model, cores, Node, load) and the ratio.
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
import SqliteDb from 'better-sqlite3'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'

const COMMITS = Number(process.env.BENCH_COMMITS ?? 50_000)
const REPOS = Number(process.env.BENCH_REPOS ?? 50)
const AC_SHARE = 0.1
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
  events: number
  acRecords: number
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

/** Creates the accounts and sequences COMMITS commits; returns the AC record count. */
async function fill(net: LocalNetwork): Promise<{ ac: number; seconds: number }> {
  const started = Date.now()
  const ctx = net.network.pds.ctx
  const accounts: Account[] = []
  for (let i = 0; i < REPOS; i++) {
    const { did } = await net.createAccount(`bench${i}`)
    const keypair = await ctx.actorStore.keypair(did)
    accounts.push({ did, keypair, repo: await Repo.create(new MemoryBlockstore(), did, keypair) })
  }
  let ac = 0
  let batch: unknown[] = []
  for (let i = 0; i < COMMITS; i++) {
    const acc = accounts[i % accounts.length]
    const isAc = (i * 7919) % 100 < AC_SHARE * 100
    const { collection, record } = isAc ? acRecord(ac) : { collection: 'app.bsky.feed.post', record: { text: `post ${i}`, createdAt: new Date().toISOString() } }
    if (isAc) ac++
    batch.push(await commitEvent(acc, collection, record))
    if (batch.length === 500 || i === COMMITS - 1) {
      await ctx.sequencer.sequenceEvts(batch as never)
      batch = []
      if ((i + 1) % 10_000 === 0) process.stderr.write(`  ${i + 1} commits\n`)
    }
  }
  return { ac, seconds: (Date.now() - started) / 1000 }
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
async function replay(net: LocalNetwork, head: number, verify: boolean, work: string): Promise<RunResult> {
  const index = path.join(work, `index-${verify ? 'verified' : 'unverified'}.sqlite`)
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/ac-appview.js'), 'ingest', '--cursor', '0'], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: process.env.BENCH_INGEST_NODE_OPTIONS ?? '', PDS_URL: net.pdsUrl, PLC_URL: net.plcUrl, HANDLE_RESOLVER_URL: net.pdsUrl, ALLOW_PRIVATE_NETWORK: 'true', INDEX_DB_PATH: index, LOG_LEVEL: 'info', INGEST_VERIFY: String(verify) },
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
  const acRecords = (db!.prepare('select count(*) as n from item').get() as { n: number }).n
  db!.close()
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  return { mode: verify ? 'verified' : 'unverified', events: head, acRecords, seconds, cpuSeconds: result.cpu, peakRssMb: result.rss }
}

function table(rows: RunResult[]): string {
  const header = ['mode', 'events', 'seconds', 'events/s', 'AC records', 'AC records/s', 'CPU s', 'CPU µs/event', 'peak RSS MB']
  const cells = rows.map((r) => [
    r.mode,
    String(r.events),
    r.seconds.toFixed(1),
    Math.round(r.events / r.seconds).toLocaleString('en-US'),
    String(r.acRecords),
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
    process.stderr.write(`filled in ${filled.seconds.toFixed(0)} s: ${head} events, ${filled.ac} AC records; replaying…\n`)
    const verified = await replay(net, head, true, work)
    const unverified = await replay(net, head, false, work)
    const cpu = os.cpus()
    process.stdout.write(
      [
        '',
        `ingest replay from cursor 0 (bench/ingest.ts): ${REPOS} repos, ${head} firehose events (${COMMITS} commits), ${filled.ac} AC records`,
        `machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (shared machine)`,
        '',
        table([verified, unverified]),
        '',
        `verified / unverified events/s: ${((verified.events / verified.seconds) / (unverified.events / unverified.seconds)).toFixed(2)}`,
        `the PDS serving the stream runs in the bench process on the same cores; CPU and RSS are the ingest process's alone`,
        '',
      ].join('\n'),
    )
  } finally {
    await net.close()
    await fs.rm(work, { recursive: true, force: true })
  }
}

await main()

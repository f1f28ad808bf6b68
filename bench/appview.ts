/**
 * `npm run bench:appview`: the AppView's read path under load.
 *
 * For each index engine in BENCH_BACKENDS (default `sqlite,postgres`), in one run (the engines
 * measured one after the other for each method and route, so both meet the same machine load):
 * 1. Writes an AC-scale synthetic index (src/appview/synthetic.ts: 25,100 items across the five
 *    kinds, 1,001 actors with Zipf-distributed activity, 20,000 posts about AC for the feed
 *    generator): into a temporary SQLite file, or into PostgreSQL (BENCH_POSTGRES_URL, an empty
 *    database; else a throwaway server from Debian's package started as the tests start it,
 *    test/support/postgres.ts: loopback, fsync off), then `vacuum analyze`d there.
 * 2. Starts the AppView on loopback in a child process (so the load generator does not share its
 *    event loop), three times: as `serve` runs it, without the response cache, and without the
 *    response and view caches (see `serve` below); the second also has plain Fastify routes
 *    `/plain/<method>` that call the same handlers with hand-parsed params, without XRPC param
 *    decoding and lexicon validation. The index's stored item views (migration 007) are built
 *    under the AppViews' configuration first, as the ingest builds them.
 * 3. Drives each route with autocannon (programmatic API) after a warm-up, and prints req/s and
 *    p50/p99 latency with the engines side by side, the XRPC/plain ratio, the targets (issues 6
 *    and 10 on SQLite, issue 13 on PostgreSQL) and the machine.
 * 4. Abuse (issue 15): the most expensive unauthenticated request, a page of 100 of the heaviest
 *    records the lexicons allow (KidLisp of 50,000 emoji, {@link writeHugeKidlisp}) computed
 *    afresh every time (as when each request misses the response cache), alone with 4
 *    connections on a thread of their own; then `resolveCode` (production route) while those 4
 *    run, whose p99 must stay under 20 ms.
 * 5. A relay's commits: getFeed (limit 50) and resolveCode (every code) on the production route while the index takes
 *    {@link RELAY_COMMITS_PER_S} transactions a second that only move a cursor, as an ingest
 *    following a relay commits other people's events: as the ingest writes them now (the index
 *    version stays, and with it every response cache) and as it wrote them before (each bumped
 *    the version, and on SQLite the AppView keyed its caches on `PRAGMA data_version`, which
 *    every commit moves: either way each commit emptied every cache).
 * 6. Ends with one `BENCH_RESULT <json>` line: every row in `results: [{ backend, method, route,
 *    rps, p50Ms, p99Ms, errors, target?, met? }]` (`backend` `sqlite` or `postgres`; `method` the
 *    bare method name, `route` as in the table), the abuse figures of SQLite at the top level as before (`hugePageBytes`,
 *    `hugePageRps`, `hugePageP99Ms`, `resolveCodeUnderAbuseRps`, `resolveCodeUnderAbuseP99Ms`),
 *    every engine's in `abuse: [{ backend, … }]`, and `relay: [{ backend, method, rps, p99Ms,
 *    errors, rpsBefore, p99MsBefore, errorsBefore }]`.
 *
 * Env: BENCH_BACKENDS (`sqlite,postgres`, or one of them), BENCH_POSTGRES_URL, BENCH_SECONDS (per
 * run, default 7), BENCH_CONNECTIONS (default 10), BENCH_ONLY (a substring of the method names
 * to run), BENCH_CPU_PROF (a folder: the server writes a V8 CPU profile there).
 */
import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { IdResolver } from '@atproto/identity'
import autocannon from 'autocannon'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { createAppView } from '../src/appview/server.js'
import type { MethodDef } from '../src/appview/methods.js'
import { writeHugeKidlisp, writeSyntheticIndex, type SyntheticIndex } from '../src/appview/synthetic.js'
import { migrateIndex, openIndex, type Backend } from '../src/db/index.js'
import { bumpVersion, saveCursor } from '../src/db/store.js'
import { refreshAllViews } from '../src/db/views.js'
import { StoredViews, type ViewConfig } from '../src/item-view.js'
import { FEEDS, feedUri } from '../src/feeds/definitions.js'
import { createLogger } from '../src/log.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 7)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10)
const WARMUP_SECONDS = 2
/** Concurrent abusive requests (issue 15: four of them pushed resolveCode from 1 ms to 76-492 ms). */
const ABUSERS = 4
/** Target of issue 15: resolveCode's p99 while {@link ABUSERS} huge pages are being computed. */
const UNDER_ABUSE_P99_MS = 20
/** Transactions a second that only move a cursor during the relay runs (an ingest on a relay commits each batch of other people's events). */
const RELAY_COMMITS_PER_S = 50

/** A throughput and latency target: at least `rps` requests/s with p99 under `p99` ms (undefined: no bound). */
interface Target {
  rps: number
  p99?: number
}

/**
 * The hot methods, each with its targets by engine: on SQLite issue 6's on the production route
 * (getFeedSkeleton: issue 10's) and issue 12's for getFeed without the response cache, on
 * PostgreSQL issue 13's (resolveCode on the production route; getFeed without the response
 * cache); undefined: measured, no target.
 */
const SCENARIOS = [
  {
    name: 'resolveCode',
    nsid: 'computer.aesthetic.media.resolveCode',
    targets: { sqlite: { xrpc: { rps: 5000, p99: 10 } }, postgres: { xrpc: { rps: 3000, p99: 15 } } },
  },
  {
    name: 'getFeed (limit 50)',
    nsid: 'computer.aesthetic.media.getFeed',
    targets: { sqlite: { xrpc: { rps: 2000, p99: 25 }, 'xrpc uncached': { rps: 3000, p99: 15 } }, postgres: { 'xrpc uncached': { rps: 1500 } } },
  },
  { name: 'getAuthorFeed (limit 50)', nsid: 'computer.aesthetic.media.getAuthorFeed', targets: {} },
  { name: 'getFeedSkeleton (limit 50)', nsid: 'app.bsky.feed.getFeedSkeleton', targets: { sqlite: { xrpc: { rps: 3000, p99: 15 } } } },
] as const satisfies ReadonlyArray<{ name: string; nsid: string; targets: Partial<Record<Backend, Partial<Record<Route, Target>>>> }>

/** The AppViews' view configuration, which the ingest's stored views are built under too. */
const VIEW_CONFIG: ViewConfig = { publicUrl: 'https://aesthetic.computer' }

/** The feed generator's identity in the benchmark: the feeds are published by this DID. */
const PUBLISHER = 'did:plc:aestheticcomputerbench00'
/** Posts about AC in the synthetic index. */
const POSTS = 20_000

type Scenario = (typeof SCENARIOS)[number]

/**
 * xrpc: production configuration; xrpc uncached: no response cache; plain: no XRPC checks, no
 * response cache; xrpc cold: neither response nor view cache (every view that is not stored
 * with its row is built from its record: a page after a restart, or beyond VIEW_CACHE_SIZE).
 */
const ROUTES = ['xrpc', 'xrpc uncached', 'plain', 'xrpc cold'] as const
type Route = (typeof ROUTES)[number]

interface Run {
  backend: Backend
  scenario: Scenario
  route: Route
  rps: number
  p50: number
  p99: number
  bad: number
}

// ---- child: the server ----

/**
 * Plain routes: the same handlers, params parsed by hand (no lexicon validation, no XRPC
 * decoding), errors left to Fastify. The control group of the comparison.
 */
function plainRoutes(scope: FastifyInstance, methods: Record<string, MethodDef>) {
  for (const s of SCENARIOS) {
    const { handler } = methods[s.nsid]
    scope.get(`/plain/${s.nsid}`, async (req, reply) => {
      const q = req.query as Record<string, string | undefined>
      const body = await handler({ code: q.code, actor: q.actor, kind: q.kind, feed: q.feed, cursor: q.cursor, limit: q.limit ? Number(q.limit) : 50 })
      return reply.header('cache-control', 'public, max-age=10').type('application/json').send(body)
    })
  }
}

/**
 * Two AppViews over the index, configured as `serve` runs them (rate limiting on, with a limit no
 * run reaches; CORS, ETags, metrics): `cached` as in production, `uncached` without the response
 * cache (every answer computed: what each request costs right after an ingest commit), which
 * also carries the plain routes.
 */
async function serve(index: string) {
  const log = createLogger('warn')
  const start = async (responseCacheSize: number, extraRoutes?: typeof plainRoutes, viewCacheSize = 50_000) => {
    const app = await createAppView({
      operator: { open: true },
      index,
      log,
      ...VIEW_CONFIG,
      healthMaxLagSeconds: 300,
      dashboard: true,
      viewCacheSize,
      responseCacheSize,
      corsOrigins: ['https://aesthetic.computer', 'https://*.aesthetic.computer'],
      rateLimitMax: 1_000_000_000,
      rateLimitWindowMs: 60_000,
      feedGenerator: {
        serviceDid: 'did:web:feeds.aesthetic.computer',
        endpoint: 'https://feeds.aesthetic.computer',
        publisherDid: PUBLISHER,
        resolver: new IdResolver(),
      },
      extraRoutes,
    })
    return { app, url: await app.listen({ host: '127.0.0.1', port: 0 }) }
  }
  const cached = await start(10_000)
  const uncached = await start(0, plainRoutes)
  const cold = await start(0, undefined, 0)
  process.send!({ cached: cached.url, uncached: uncached.url, cold: cold.url } satisfies Servers)
  process.on('disconnect', () => void Promise.all([cached.app.close(), uncached.app.close(), cold.app.close()]))
}

// ---- parent: data, load, table ----

function pathsFor(s: Scenario, data: SyntheticIndex): string[] {
  const q = (params: Record<string, string>) => `?${new URLSearchParams(params)}`
  if (s.name === 'resolveCode') return data.codes.filter((_, i) => i % 7 === 0).map((code) => q({ code }))
  if (s.name.startsWith('getAuthorFeed')) return data.handles.map((actor) => q({ actor, limit: '50' }))
  if (s.name.startsWith('getFeedSkeleton')) return FEEDS.map((def) => q({ feed: feedUri(PUBLISHER, def), limit: '50' }))
  return [q({ limit: '50' })]
}

async function load(url: string, paths: string[], seconds: number, connections = CONNECTIONS) {
  let i = 0
  return autocannon({
    url,
    connections,
    duration: seconds,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length] }) }],
  })
}

async function measure(backend: Backend, urls: Servers, s: Scenario, route: Route, data: SyntheticIndex): Promise<Run> {
  const prefix = route === 'plain' ? '/plain/' : '/xrpc/'
  const paths = pathsFor(s, data).map((p) => `${prefix}${s.nsid}${p}`)
  const base = route === 'xrpc' ? urls.cached : route === 'xrpc cold' ? urls.cold : urls.uncached
  await load(base, paths, WARMUP_SECONDS)
  const r = await load(base, paths, SECONDS)
  return { backend, scenario: s, route, ...figures(r) }
}

/** An autocannon run's headline figures. */
interface Figures {
  rps: number
  p50: number
  p99: number
  bad: number
}

function figures(r: autocannon.Result): Figures {
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, bad: r.non2xx + r.errors + r.timeouts }
}

interface Abuse {
  backend: Backend
  path: string
  /** Size of one answer. */
  bytes: number
  alone: Figures
  resolveCode: Figures
}

interface Relay {
  backend: Backend
  /** The method measured (a {@link Scenario}'s name). */
  method: string
  /** Cursor-only commits as the ingest writes them now: the index version stays. */
  now: Figures
  /** The same commits each bumping the index version, as the ingest wrote them before. */
  before: Figures
}

/** Methods measured during a relay's commits: AC's front page, and code lookups over every code (many distinct answers). */
const RELAY_SCENARIOS = ['getFeed (limit 50)', 'resolveCode']

/** `s` on the production route while the index at `target` takes a relay's cursor-only commits (step 5 above), now and before. */
async function measureRelay(backend: Backend, urls: Servers, target: string, data: SyntheticIndex, s: Scenario): Promise<Relay> {
  const paths = pathsFor(s, data).map((p) => `/xrpc/${s.nsid}${p}`)
  const run = async (bump: boolean) => {
    const db = openIndex(target)
    const stopped = new AbortController()
    const commits = (async () => {
      for (let seq = 1; !stopped.signal.aborted; seq++) {
        const now = new Date().toISOString()
        await db.transaction().execute(async (trx) => {
          await saveCursor(trx, 'wss://relay.bench.invalid', seq, now, now)
          if (bump) await bumpVersion(trx)
        })
        await new Promise((r) => setTimeout(r, 1000 / RELAY_COMMITS_PER_S))
      }
    })()
    try {
      await load(urls.cached, paths, WARMUP_SECONDS)
      return figures(await load(urls.cached, paths, SECONDS))
    } finally {
      stopped.abort()
      await commits
      await db.destroy()
    }
  }
  return { backend, method: s.name, now: await run(false), before: await run(true) }
}

function relayTable(relays: Relay[]) {
  const rows = [[`production route, ${RELAY_COMMITS_PER_S} cursor-only commits/s (a relay's)`, 'req/s', 'p50 ms', 'p99 ms', 'errors']]
  for (const r of relays)
    for (const [label, f] of [
      [`${r.method}, ${r.backend}: version kept (now)`, r.now],
      [`${r.method}, ${r.backend}: version bumped (before)`, r.before],
    ] as const)
      rows.push([label, Math.round(f.rps).toLocaleString('en'), String(f.p50), String(f.p99), String(f.bad)])
  process.stdout.write(['', ...textTable(rows, (c) => c === 0)].join('\n') + '\n')
}

/**
 * Lines of a plain-text table whose first row is its header, a rule under it: columns two spaces
 * apart, `leftAligned` ones padded on the right, the figures on the left. `groups`, when given, is
 * a row above the header (an engine's name over its columns), left-aligned throughout.
 */
function textTable(rows: string[][], leftAligned: (column: number) => boolean, groups?: string[]): string[] {
  const all = groups ? [groups, ...rows] : rows
  const widths = rows[0].map((_, c) => Math.max(...all.map((r) => r[c].length)))
  const line = (r: string[], left = leftAligned) => r.map((cell, c) => (left(c) ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')
  return [...(groups ? [line(groups, () => true)] : []), line(rows[0]), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map((r) => line(r))]
}

/**
 * The most expensive unauthenticated request: the author feed (limit 100) of the actor holding
 * 100 huge KidLisp records, on the server without response cache (every answer computed, as
 * for requests that miss the cache), alone with {@link ABUSERS} connections, then `resolveCode`
 * on the production server (same process, same event loop) while those run.
 */
async function measureAbuse(backend: Backend, urls: Servers, data: SyntheticIndex, hostile: string): Promise<Abuse> {
  const path = `/xrpc/computer.aesthetic.media.getAuthorFeed?${new URLSearchParams({ actor: hostile, limit: '100' })}`
  const bytes = (await (await fetch(urls.uncached + path)).arrayBuffer()).byteLength
  // The abusers run on a thread of their own: on this one, reading their 100 MB/s of answers
  // would delay the reading of resolveCode's and count against it (no real client shares its
  // event loop with an attacker).
  const abuse = (seconds: number) => autocannon({ url: urls.uncached + path, connections: ABUSERS, duration: seconds, workers: 1 })
  await abuse(WARMUP_SECONDS)
  const alone = await abuse(SECONDS)
  const codes = pathsFor(SCENARIOS[0], data).map((p) => `/xrpc/${SCENARIOS[0].nsid}${p}`)
  await load(urls.cached, codes, WARMUP_SECONDS)
  const [, resolve] = await Promise.all([abuse(SECONDS), load(urls.cached, codes, SECONDS)])
  return { backend, path, bytes, alone: figures(alone), resolveCode: figures(resolve) }
}

function abuseTable(a: Abuse) {
  const met = a.resolveCode.p99 < UNDER_ABUSE_P99_MS ? 'met' : 'MISSED'
  const rows = [
    [`abuse (${a.backend})`, 'req/s', 'p50 ms', 'p99 ms', 'errors', 'target'],
    [
      `huge page (${(a.bytes / 1024).toFixed(0)} KiB), ${ABUSERS} connections, uncached`,
      Math.round(a.alone.rps).toLocaleString('en'),
      String(a.alone.p50),
      String(a.alone.p99),
      String(a.alone.bad),
      '',
    ],
    [
      `resolveCode while ${ABUSERS} huge pages run`,
      Math.round(a.resolveCode.rps).toLocaleString('en'),
      String(a.resolveCode.p50),
      String(a.resolveCode.p99),
      String(a.resolveCode.bad),
      `${met} (p99 <${UNDER_ABUSE_P99_MS})`,
    ],
  ]
  process.stdout.write(['', `huge page: GET ${a.path}`, ...textTable(rows, (c) => c === 0 || c === 5)].join('\n') + '\n')
}

/** The abuse figures for the `BENCH_RESULT` line: req/s rounded to 0.1, latencies in ms. */
function abuseResult(a: Abuse): Record<string, number> {
  const round = (n: number) => Math.round(n * 10) / 10
  return {
    hugePageBytes: a.bytes,
    hugePageRps: round(a.alone.rps),
    hugePageP99Ms: a.alone.p99,
    resolveCodeUnderAbuseRps: round(a.resolveCode.rps),
    resolveCodeUnderAbuseP99Ms: a.resolveCode.p99,
  }
}

/** The relay figures of one engine and method for the `BENCH_RESULT` line. */
function relayResult(r: Relay) {
  const round = (n: number) => Math.round(n * 10) / 10
  return {
    backend: r.backend,
    method: r.method.split(' ')[0],
    rps: round(r.now.rps),
    p99Ms: r.now.p99,
    errors: r.now.bad,
    rpsBefore: round(r.before.rps),
    p99MsBefore: r.before.p99,
    errorsBefore: r.before.bad,
  }
}

/** `run`'s target on its engine and route, if any. */
function targetOf(run: Run): Target | undefined {
  return (run.scenario.targets as Partial<Record<Backend, Partial<Record<Route, Target>>>>)[run.backend]?.[run.route]
}

function met(run: Run, t: Target): boolean {
  return run.rps >= t.rps && (t.p99 === undefined || run.p99 < t.p99)
}

/** One row per method and route, the engines side by side: req/s, p50, p99, errors, ratio to plain, target. */
function table(runs: Run[], backends: Backend[], setup: Record<string, string>) {
  const cells = (run: Run | undefined) => {
    if (!run) return ['', '', '', '', '', '']
    const plain = runs.find((r) => r.backend === run.backend && r.scenario === run.scenario && r.route === 'plain')
    const t = targetOf(run)
    return [
      Math.round(run.rps).toLocaleString('en'),
      String(run.p50),
      String(run.p99),
      String(run.bad),
      run.route === 'plain' || !plain ? '' : (run.rps / plain.rps).toFixed(2),
      t ? `${met(run, t) ? 'met' : 'MISSED'} (≥${t.rps}${t.p99 ? `, p99 <${t.p99}` : ''})` : '',
    ]
  }
  const rows = [['method', 'route', ...backends.flatMap(() => ['req/s', 'p50 ms', 'p99 ms', 'errors', 'vs plain', 'target'])]]
  for (const s of SCENARIOS) {
    for (const route of ROUTES) {
      const byBackend = backends.map((b) => runs.find((r) => r.backend === b && r.scenario === s && r.route === route))
      if (byBackend.every((r) => !r)) continue
      rows.push([s.name, route, ...byBackend.flatMap(cells)])
    }
  }
  const groups = ['', '', ...backends.flatMap((b) => [b, '', '', '', '', ''])]
  const out = [...Object.entries(setup).map(([k, v]) => `${k}: ${v}`), '', ...textTable(rows, (c) => c < 2 || (c - 2) % 6 === 5, groups)]
  process.stdout.write(out.join('\n') + '\n')
}

interface Servers {
  cached: string
  uncached: string
  /** Neither response nor view cache. */
  cold: string
}

function startServer(index: string): Promise<{ child: ChildProcess; urls: Servers }> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', index], {
    execArgv: ['--import', 'tsx', ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ child, urls: m as Servers }))
    child.once('exit', (code) => reject(new Error(`AppView exited with ${code}`)))
  })
}

/** Asks the server to close (by disconnecting its IPC channel) and waits for it; kills it after 10 s. */
async function stopServer(child: ChildProcess) {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.disconnect()
  const timer = setTimeout(() => child.kill(), 10_000)
  await exited
  clearTimeout(timer)
}

/** An empty index of `backend` for one engine's runs, and how to drop it. */
async function emptyIndex(backend: Backend, dir: string): Promise<{ target: string; drop(): Promise<void> }> {
  if (backend === 'sqlite') return { target: path.join(dir, 'index.sqlite'), drop: async () => {} }
  if (process.env.BENCH_POSTGRES_URL) return { target: process.env.BENCH_POSTGRES_URL, drop: async () => {} }
  const { startPostgres } = await import('../test/support/postgres.js')
  const pg = await startPostgres()
  return { target: pg.url, drop: () => pg.stop() }
}

/** One engine's index and AppView server, ready to measure. */
interface Engine {
  backend: Backend
  /** Where its index is (a SQLite path or a PostgreSQL URL). */
  target: string
  urls: Servers
  data: SyntheticIndex
  hostile: string
  loadSeconds: number
  /** Stops the server and drops the index. */
  stop(): Promise<void>
}

/** Writes `backend`'s synthetic index and starts its AppView server. */
async function startEngine(backend: Backend, dir: string): Promise<Engine> {
  const index = await emptyIndex(backend, dir)
  try {
    const db = openIndex(index.target)
    await migrateIndex(db)
    const t0 = Date.now()
    const data = await writeSyntheticIndex(db, { posts: POSTS })
    const hostile = await writeHugeKidlisp(db)
    await refreshAllViews(db, new StoredViews(VIEW_CONFIG)) // as the ingest does at start: each item's list view kept with its row (migration 007)
    if (backend === 'postgres') {
      await sql`vacuum analyze`.execute(db) // as autovacuum would: statistics, and index-only scans
      await sql`checkpoint`.execute(db) // the load's writes flushed now, not during the runs
    }
    const loadSeconds = (Date.now() - t0) / 1000
    await db.destroy()
    process.stderr.write(`${backend}: index written in ${loadSeconds.toFixed(1)} s\n`)
    const { child, urls } = await startServer(index.target)
    return {
      backend,
      target: index.target,
      urls,
      data,
      hostile,
      loadSeconds,
      async stop() {
        await stopServer(child)
        await index.drop()
      },
    }
  } catch (err) {
    await index.drop()
    throw err
  }
}

async function main() {
  const started = Date.now()
  const backends = (process.env.BENCH_BACKENDS ?? 'sqlite,postgres').split(',').map((b) => b.trim()) as Backend[]
  for (const b of backends) if (b !== 'sqlite' && b !== 'postgres') throw new Error(`BENCH_BACKENDS: unknown engine ${b} (sqlite, postgres)`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ac-appview-bench-'))
  try {
    const engines: Engine[] = []
    const runs: Run[] = []
    const abuses: Abuse[] = []
    const relays: Relay[] = []
    const loadBefore = os.loadavg()
    try {
      for (const backend of backends) engines.push(await startEngine(backend, dir))
      // Engine after engine for each method and route, so both meet the same load (the machine is shared).
      const only = process.env.BENCH_ONLY ?? ''
      for (const s of SCENARIOS.filter((x) => x.name.includes(only)))
        for (const route of ROUTES) for (const e of engines) runs.push(await measure(e.backend, e.urls, s, route, e.data))
      if ('abuse'.includes(only)) for (const e of engines) abuses.push(await measureAbuse(e.backend, e.urls, e.data, e.hostile))
      if ('relay'.includes(only))
        for (const s of SCENARIOS.filter((x) => RELAY_SCENARIOS.includes(x.name)))
          for (const e of engines) relays.push(await measureRelay(e.backend, e.urls, e.target, e.data, s))
    } finally {
      for (const e of engines) await e.stop()
    }
    const results = engines.map((e) => ({ backend: e.backend, data: e.data, loadSeconds: e.loadSeconds, abuse: abuses.find((a) => a.backend === e.backend) }))
    const cpus = os.cpus()
    const machine = `${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`
    const loadAfter = os.loadavg()
    const data = results[0].data
    table(runs, backends, {
      machine,
      node: process.version,
      'load average (1 min) before / after': `${loadBefore[0].toFixed(2)} / ${loadAfter[0].toFixed(2)}`,
      index: `${data.items.toLocaleString('en')} items, ${data.handles.length.toLocaleString('en')} actors, ${data.codes.length.toLocaleString('en')} codes, ${data.posts.toLocaleString('en')} posts about AC, 100 huge KidLisp records of one hostile actor (written in ${results.map((r) => `${r.loadSeconds.toFixed(1)} s on ${r.backend}`).join(', ')})`,
      engines: backends
        .map((b) =>
          b === 'sqlite'
            ? 'SQLite (WAL, a read-only connection of the AppView)'
            : `PostgreSQL ${process.env.BENCH_POSTGRES_URL ? '(BENCH_POSTGRES_URL)' : "(Debian's server on loopback, fsync off, as in the tests)"}, a pool of 10, named prepared statements`,
        )
        .join('; '),
      load: `autocannon, ${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s per run, each engine's server in a child process, the engines measured one after the other for each method and route`,
      'total time': `${Math.round((Date.now() - started) / 1000)} s`,
    })
    for (const r of results) if (r.abuse) abuseTable(r.abuse)
    if (relays.length) relayTable(relays)
    const rows = runs.map((r) => {
      const t = targetOf(r)
      return {
        backend: r.backend,
        method: r.scenario.nsid.split('.').pop(),
        route: r.route,
        rps: Math.round(r.rps),
        p50Ms: r.p50,
        p99Ms: r.p99,
        errors: r.bad,
        ...(t ? { target: t, met: met(r, t) } : {}),
      }
    })
    const sqliteAbuse = results.find((r) => r.backend === 'sqlite')?.abuse
    const abuse = results.filter((r) => r.abuse).map((r) => ({ backend: r.backend, ...abuseResult(r.abuse!) }))
    process.stdout.write(
      `BENCH_RESULT ${JSON.stringify({ bench: 'appview', machine, node: process.version, load: { before: loadBefore[0], after: loadAfter[0] }, limit: 50, results: rows, ...(sqliteAbuse ? abuseResult(sqliteAbuse) : {}), abuse, relay: relays.map(relayResult) })}\n`,
    )
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3])
else await main()

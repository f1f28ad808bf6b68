import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import { TID } from '@atproto/common-web'
import { TestPds } from '@atproto/dev-env'
import { collections } from '../../src/collections/index.js'
import { isPostgresUrl, type IndexDb } from '../../src/db/index.js'
import { withIndex, type TestIndex } from './backend.js'
import { spawnNode, startCli, type Child } from './children.js'
import type { LocalNetwork } from '../../src/dev/network.js'

const ROOT = path.resolve(import.meta.dirname, '../..')

/** Every `computer.aesthetic.*` record of `dids` on `pdsUrl` (com.atproto.repo.listRecords): uri → cid. */
export async function groundTruth(pdsUrl: string, dids: string[]): Promise<Map<string, string>> {
  const agent = new AtpAgent({ service: pdsUrl })
  const out = new Map<string, string>()
  for (const did of dids) {
    for (const col of collections) {
      let cursor: string | undefined
      do {
        const res = await agent.com.atproto.repo.listRecords({ repo: did, collection: col.nsid, limit: 100, cursor })
        for (const r of res.data.records) out.set(r.uri, r.cid)
        cursor = res.data.records.length === 100 ? res.data.cursor : undefined
      } while (cursor)
    }
  }
  return out
}

/** What the index at `target` holds: uri → cid over items and quarantined records (a uri twice would throw). */
export async function indexedVersions(target: string): Promise<Map<string, string>> {
  const rows = await withIndex(target, (db) =>
    db
      .selectFrom('item')
      .select(['uri', 'cid'])
      .unionAll(db.selectFrom('quarantine').select(['uri', 'cid']))
      .execute(),
  )
  const out = new Map<string, string>()
  for (const r of rows) {
    if (out.has(r.uri)) throw new Error(`${r.uri} is indexed twice`)
    out.set(r.uri, r.cid)
  }
  return out
}

/**
 * What `read` reads from the index at `target` with a connection of its own (the ingest may be
 * another process); undefined while the index or its tables do not exist yet.
 */
export async function readIndex<T>(target: string, read: (db: IndexDb) => Promise<T>): Promise<T | undefined> {
  if (!isPostgresUrl(target) && !fs.existsSync(target)) return undefined // opening would create the file
  return withIndex(target, read).catch(() => undefined)
}

/**
 * A TCP proxy in front of a host, to drop or stall connections the way a network does.
 * `drop()` destroys every open connection; `stall()` keeps them open but forwards nothing (and
 * accepts new ones that never get an answer) until `resume()`.
 */
export async function startProxy(targetPort: number): Promise<{ url: string; drop(): void; stall(): void; resume(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const pairs: Array<{ client: net.Socket; upstream: net.Socket; flowing: boolean }> = []
  let stalled = false
  const flow = (p: (typeof pairs)[number]) => {
    if (p.flowing || p.client.destroyed) return
    p.flowing = true
    p.client.pipe(p.upstream)
    p.upstream.pipe(p.client)
    p.client.resume()
    p.upstream.resume()
  }
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    const pair = { client, upstream, flowing: false }
    pairs.push(pair)
    client.pause()
    if (!stalled) flow(pair)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    drop: () => sockets.forEach((s) => s.destroy()),
    stall() {
      stalled = true
      for (const p of pairs.filter((p) => p.flowing)) {
        p.flowing = false
        p.client.unpipe(p.upstream)
        p.upstream.unpipe(p.client)
        p.client.pause()
        p.upstream.pause()
      }
    },
    resume() {
      stalled = false
      pairs.forEach(flow)
    },
    close: () =>
      new Promise<void>((r) => {
        sockets.forEach((s) => s.destroy())
        server.close(() => r())
      }),
  }
}

/**
 * Stops the network's PDS and starts it again on the same port with the same data directory and
 * blob store (what an operator's restart does). Resolves to the new PDS.
 */
export async function restartPds(network: LocalNetwork): Promise<TestPds> {
  const old = network.network.pds
  const cfg = old.ctx.cfg as unknown as { db: { accountDbLoc: string }; blobstore: { location?: string }; service: { port: number } }
  const dataDirectory = path.dirname(cfg.db.accountDbLoc)
  await old.close()
  const pds = await TestPds.create({ port: old.port, didPlcUrl: network.plcUrl, dataDirectory, blobstoreDiskLocation: cfg.blobstore.location })
  network.network.pds = pds
  return pds
}

/**
 * The ingest as a child process with `env` (on top of the test's environment): the CLI's
 * `ac-appview ingest`, or with `lean` test/support/ingest-child.ts (the same ingest, faster to
 * start). It cannot outlive the test process (see spawnNode). One verify worker unless `env` says
 * otherwise: the crash and failover tests start dozens of ingests, and each worker loaded from
 * TypeScript source costs about a second of CPU (the pool itself: test/ingest-pool.test.ts).
 */
export function spawnIngest(env: Record<string, string>, args: string[] = [], lean = false): Child {
  const full = { INGEST_VERIFY_THREADS: '1', ...env }
  return lean ? spawnNode(['--import', 'tsx', path.join(ROOT, 'test/support/ingest-child.ts'), ...args], full) : startCli(['ingest', ...args], full)
}

/** An account on the test PDS, logged in, with the AC records it holds now (`collection/rkey` → collection). */
export interface WritingAccount {
  did: string
  agent: AtpAgent
  live: Map<string, string>
}

const AC_COLLECTIONS = ['computer.aesthetic.mood', 'computer.aesthetic.piece', 'computer.aesthetic.kidlisp']

/** `count` new accounts (`<prefix>0`, `<prefix>1`…) on `net`'s PDS, each logged in, holding nothing yet. */
export async function writingAccounts(net: LocalNetwork, prefix: string, count: number): Promise<WritingAccount[]> {
  const accounts: WritingAccount[] = []
  for (let i = 0; i < count; i++) {
    const acc = await net.createAccount(`${prefix}${i}`)
    const agent = new AtpAgent({ service: net.pdsUrl })
    await agent.login({ identifier: acc.did, password: acc.password })
    accounts.push({ did: acc.did, agent, live: new Map() })
  }
  return accounts
}

/**
 * A write load for crash and failover tests: each call makes one applyWrites per account with
 * `updates` updates and `deletes` deletes of random live AC records, then `creates` creates of
 * which every `postEvery`-th is an app.bsky.feed.post (not indexed) and the others AC records
 * (mood, piece, kidlisp in turn), keeping each account's `live` map true to its repo.
 */
export function burstWriter(opts: { updates: number; deletes: number; creates: number; postEvery: number }): (accounts: WritingAccount[]) => Promise<void> {
  let n = 0
  const record = (collection: string) => {
    const when = new Date().toISOString()
    const i = ++n
    if (collection === 'computer.aesthetic.mood') return { $type: collection, mood: `mood ${i}`, when, ref: `r${i}` }
    if (collection === 'computer.aesthetic.piece') return { $type: collection, slug: `piece-${i}`, when, ref: `r${i}` }
    return { $type: collection, source: `(ink ${i % 255})`, code: `k${i.toString(36)}`, when, ref: `r${i}` }
  }
  const writesOf = (a: WritingAccount) => {
    const writes: unknown[] = []
    const live = [...a.live.entries()].sort(() => Math.random() - 0.5)
    for (const [key, collection] of live.slice(0, opts.updates))
      writes.push({ $type: 'com.atproto.repo.applyWrites#update', collection, rkey: key.split('/')[1], value: record(collection) })
    for (const [key, collection] of live.slice(opts.updates, opts.updates + opts.deletes)) {
      writes.push({ $type: 'com.atproto.repo.applyWrites#delete', collection, rkey: key.split('/')[1] })
      a.live.delete(key)
    }
    for (let i = 0; i < opts.creates; i++) {
      const post = i % opts.postEvery === opts.postEvery - 1
      const collection = post ? 'app.bsky.feed.post' : AC_COLLECTIONS[i % AC_COLLECTIONS.length]
      const rkey = TID.nextStr()
      const value = post ? { $type: collection, text: 'post', createdAt: new Date().toISOString() } : record(collection)
      writes.push({ $type: 'com.atproto.repo.applyWrites#create', collection, rkey, value })
      if (!post) a.live.set(`${collection}/${rkey}`, collection)
    }
    return writes
  }
  return async (accounts) => {
    await Promise.all(accounts.map((a) => a.agent.com.atproto.repo.applyWrites({ repo: a.did, writes: writesOf(a) as never, validate: false })))
  }
}

/**
 * The environment of an ingest child process on `net` and the index `idx`: its PDS as firehose
 * and handle resolver, its PLC, loopback allowed, commits applied 20 at a time; `over` adds or replaces any.
 */
export function ingestEnv(net: LocalNetwork, idx: TestIndex, over: Record<string, string> = {}): Record<string, string> {
  return {
    PDS_URL: net.pdsUrl,
    PLC_URL: net.plcUrl,
    HANDLE_RESOLVER_URL: net.pdsUrl,
    ALLOW_PRIVATE_NETWORK: 'true',
    ...idx.env,
    INGEST_BATCH_SIZE: '20',
    ...over,
  }
}

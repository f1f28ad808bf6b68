import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import { TestPds } from '@atproto/dev-env'
import { collections } from '../../src/collections/index.js'
import { isPostgresUrl, type IndexDb } from '../../src/db/index.js'
import { withIndex } from './backend.js'
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

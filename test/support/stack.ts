import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { MongoClient, type Db } from 'mongodb'
import { loadConfig, type Config } from '../../src/config.js'
import type { IndexDb } from '../../src/db/index.js'
import { localEnv } from '../../src/dev/config.js'
import { startMediaServer } from '../../src/dev/media-server.js'
import { startMongo } from '../../src/dev/mongo-server.js'
import { startNetwork, type LocalNetwork } from '../../src/dev/network.js'
import { seedSample, type SampleOptions, type SampleSummary } from '../../src/dev/sample.js'
import { createLogger } from '../../src/log.js'
import type { RunningIngest } from '../../src/ingest/run.js'
import { openMigratedIndex, runAppView, runIngest } from '../../src/services.js'
import { testIndex, type Backend, type TestIndex } from './backend.js'
export { waitFor } from '../../src/wait.js'

/** Everything a test needs, all real: MongoDB protocol server, PLC, PDS, object storage over HTTP. */
export interface Stack {
  cfg: Config
  /** The environment `cfg` was read from, for `ac-appview` run as a child process. */
  env: Record<string, string>
  net: LocalNetwork
  mongo: Db
  mediaDir: string
  storageUrl(bucket: string): string
  work: string
  log: ReturnType<typeof createLogger>
  /** The index (SQLite by default, or a PostgreSQL server of the stack's own). */
  index: TestIndex
  close(): Promise<void>
}

/** `mediaLatencyMs`: delay of every object-storage answer, as AC's remote storage has; `backend`: the index's engine (default SQLite). */
export async function startStack(opts: { rateLimits?: boolean; mediaLatencyMs?: number; backend?: Backend } = {}): Promise<Stack> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-appview-test-'))
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent')
  const dbName = `test_${process.pid}_${Date.now()}`
  const mongo = await startMongo({ dbName })
  const client = await MongoClient.connect(mongo.uri)
  const net = await startNetwork({ rateLimits: opts.rateLimits })
  const mediaDir = path.join(work, 'media')
  await fs.mkdir(mediaDir, { recursive: true })
  const media = await startMediaServer({ dir: mediaDir, latencyMs: opts.mediaLatencyMs })
  const index = await testIndex(opts.backend ?? 'sqlite', work)
  const env = {
    ...localEnv({ mongoUri: mongo.uri, mongoDb: dbName, pdsUrl: net.pdsUrl, plcUrl: net.plcUrl, mediaUrl: media.url, work }),
    ...index.env,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
  }
  const cfg = loadConfig(env)
  return {
    cfg,
    env,
    net,
    mongo: client.db(dbName),
    mediaDir,
    storageUrl: media.storageUrl,
    work,
    log,
    index,
    async close() {
      await index.stop()
      await media.close()
      await client
        .db(dbName)
        .dropDatabase()
        .catch(() => {})
      await client.close()
      await net.close()
      await mongo.stop()
      await fs.rm(work, { recursive: true, force: true })
    },
  }
}

/** AC's sample data (src/dev/sample.ts) seeded into the stack: MongoDB, object storage and PDS accounts. */
export function seedStack(stack: Stack, opts: Omit<SampleOptions, 'db' | 'mediaDir' | 'storageUrl' | 'pdsUrl' | 'createAccount'> = {}): Promise<SampleSummary> {
  return seedSample({
    db: stack.mongo,
    mediaDir: stack.mediaDir,
    storageUrl: stack.storageUrl,
    pdsUrl: stack.net.pdsUrl,
    createAccount: stack.net.createAccount,
    ...opts,
  })
}

/**
 * The environment of `ac-appview writer …` run as a child process on the stack: its MongoDB, PDS
 * and object storage, the ledger in `<work>/writer`, warnings only; `over` sets or replaces any.
 */
export function writerEnv(stack: Stack, over: Record<string, string> = {}): Record<string, string | undefined> {
  return {
    ...process.env,
    MONGODB_URI: stack.cfg.MONGODB_URI,
    MONGODB_DB: stack.cfg.MONGODB_DB,
    PDS_URL: stack.cfg.PDS_URL,
    AC_STORAGE_URL: stack.cfg.AC_STORAGE_URL,
    DATA_DIR: path.join(stack.work, 'writer'),
    LOG_LEVEL: 'warn',
    ...over,
  }
}

/**
 * The ingest and the AppView on a free port, as `ac-appview ingest` and `serve` run them, and a
 * connection of the test's own to the index (`index`).
 */
export async function startIndexing(
  stack: Stack,
): Promise<{ index: IndexDb; ingest: RunningIngest; url: string; stopIngest(): Promise<void>; restartIngest(): Promise<void>; close(): Promise<void> }> {
  const index = await openMigratedIndex(stack.cfg, stack.log)
  let ingest = await runIngest(stack.cfg, stack.log)
  const { app, url } = await runAppView(stack.cfg, stack.log)
  return {
    index,
    get ingest() {
      return ingest
    },
    url,
    stopIngest: () => ingest.stop(),
    async restartIngest() {
      ingest = await runIngest(stack.cfg, stack.log)
    },
    async close() {
      await app.close()
      await ingest.stop()
      await index.destroy()
    },
  }
}

/** GET an XRPC query over real HTTP; returns status and parsed JSON body. */
export async function xrpc(base: string, nsid: string, params: Record<string, string | number | undefined> = {}) {
  const url = new URL(`/xrpc/${nsid}`, base)
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, String(v))
  const res = await fetch(url)
  return { status: res.status, body: (await res.json()) as any }
}

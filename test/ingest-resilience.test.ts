import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ingestHealth } from '../src/appview/health.js'
import { ReadModel } from '../src/appview/read-model.js'
import { migrateIndex, openIndex, type IndexDb } from '../src/db/index.js'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { startIngest, type Ingest } from '../src/ingest/firehose.js'
import { Identity } from '../src/identity.js'
import { ingestMetrics } from '../src/ingest/metrics.js'
import { createLogger } from '../src/log.js'
import { waitFor } from '../src/wait.js'
import { BACKENDS, testIndex, type TestIndex } from './support/backend.js'
import { restartPds, startProxy } from './support/ingest.js'

/** Health threshold and watchdog of this test, in seconds: small, so stalls show quickly. */
const MAX_LAG = 3
const WATCHDOG = 2

/**
 * The ingest against a PDS behind a TCP proxy: dropped connections, a stalled stream and a PDS
 * restart are all survived without anyone touching the ingest; /xrpc/_health goes stale in time.
 * On each index engine.
 */
describe.each(BACKENDS)('ingest resilience (%s)', (backend) => {
  let net: LocalNetwork
  let proxy: Awaited<ReturnType<typeof startProxy>>
  let work: string
  let idx: TestIndex
  let db: IndexDb
  let read: ReadModel
  let ingest: Ingest
  let account: { did: string; handle: string; password: string }
  let n = 0

  const health = () => ingestHealth(read, MAX_LAG)
  const indexed = async (uri: string) => !!(await db.selectFrom('item').select('uri').where('uri', '=', uri).executeTakeFirst())

  /** Writes a mood on the (current) PDS; resolves to its uri. */
  async function writeMood(): Promise<string> {
    const agent = new AtpAgent({ service: net.network.pds.url })
    await agent.login({ identifier: account.did, password: account.password })
    const record = { $type: 'computer.aesthetic.mood', mood: `mood ${++n}`, when: new Date().toISOString(), ref: `r${n}` }
    return (await agent.com.atproto.repo.createRecord({ repo: account.did, collection: 'computer.aesthetic.mood', record, validate: false })).data.uri
  }

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-ingest-resilience-'))
    net = await startNetwork()
    proxy = await startProxy(net.network.pds.port)
    account = await net.createAccount('resilient')
    idx = await testIndex(backend, work)
    db = openIndex(idx.target)
    await migrateIndex(db)
    const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent')
    read = ReadModel.open(idx.target, { log })
    const identity = new Identity({ plcUrl: net.plcUrl, handleResolverUrl: net.pdsUrl, allowPrivateNetwork: true, log })
    ingest = await startIngest({
      db,
      identity,
      services: [proxy.url],
      trustedPds: [new URL(net.pdsUrl).origin],
      log,
      heartbeatMs: 300,
      watchdogMs: WATCHDOG * 1000,
      maxReconnectSeconds: 2,
    })
    const uri = await writeMood()
    await waitFor('the first mood', () => indexed(uri), 30_000)
  })

  afterAll(async () => {
    await ingest?.stop()
    await read?.close()
    await db?.destroy()
    await idx?.stop()
    await proxy?.close()
    await net?.close()
    await fs.rm(work, { recursive: true, force: true })
  })

  it('keeps indexing after its connection is dropped', async () => {
    proxy.drop()
    const uri = await writeMood()
    await waitFor('the mood written after the drop', () => indexed(uri), 30_000)
    const reconnects = await ingestMetrics.getSingleMetric('ingest_reconnects_total')!.get()
    expect(reconnects.values.reduce((sum, v) => sum + v.value, 0)).toBeGreaterThan(0)
  })

  it('turns /xrpc/_health stale within the threshold when the stream stalls, and ok again after', async () => {
    await waitFor('health ok', async () => (await health()).status === 'ok', 30_000)
    const stalled = Date.now()
    proxy.stall()
    await waitFor('health stale', async () => (await health()).status === 'stale', 30_000)
    // the ping heartbeat (every WATCHDOG s) notices within two intervals; then MAX_LAG s without a heartbeat
    expect((Date.now() - stalled) / 1000).toBeLessThanOrEqual(MAX_LAG + 2 * WATCHDOG + 2)
    proxy.resume()
    const uri = await writeMood()
    await waitFor('the mood written after the stall', () => indexed(uri), 60_000)
    await waitFor('health ok again', async () => (await health()).status === 'ok', 30_000)
  })

  it('backfills again when a connection at the live tail drops before its first event', async () => {
    const tailDb = openIndex((await idx.another('tail')).target)
    await migrateIndex(tailDb)
    const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent')
    const identity = new Identity({ plcUrl: net.plcUrl, handleResolverUrl: net.pdsUrl, allowPrivateNetwork: true, log })
    const tail = await startIngest({ db: tailDb, identity, services: [proxy.url], trustedPds: [], log, heartbeatMs: 300, maxReconnectSeconds: 2 })
    try {
      await tail.backfillsSettled()
      expect((await tailDb.selectFrom('cursor').select('seq').executeTakeFirstOrThrow()).seq).toBe(-1)
      proxy.drop()
      await waitFor(
        'a new backfill',
        async () => (await tailDb.selectFrom('backfill').select('reason').executeTakeFirst())?.reason === 'reconnected at the live tail',
        30_000,
      )
      await tail.backfillsSettled()
      expect((await tailDb.selectFrom('item').select('uri').execute()).length).toBe(
        await db
          .selectFrom('item')
          .select('uri')
          .execute()
          .then((r) => r.length),
      )
    } finally {
      await tail.stop()
      await tailDb.destroy()
    }
  })

  it('survives a PDS restart on the same port, without operator action', async () => {
    await restartPds(net)
    const uri = await writeMood()
    await waitFor('the mood written after the restart', () => indexed(uri), 60_000)
    expect((await health()).status).toBe('ok')
  })
})

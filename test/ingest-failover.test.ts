import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { waitFor } from '../src/wait.js'
import { testIndex, withIndex, type TestIndex } from './support/backend.js'
import { burstWriter, groundTruth, ingestEnv, indexedVersions, spawnIngest, startProxy, writingAccounts, type WritingAccount } from './support/ingest.js'

const KILLS = 5
const ACCOUNTS = 3
/** INGEST_FAILOVER_SECONDS of the test: a standby must be writing within this after the leader died. */
const FAILOVER_SECONDS = 6

type Child = ReturnType<typeof spawnIngest>

/**
 * Leader election on PostgreSQL (src/ingest/leader.ts): two ingest processes on one index, one
 * leads, the other stands by. The leader is SIGKILLed while records are created, updated and
 * deleted, {@link KILLS} times (a new standby replacing it each time); each time the standby must
 * be writing within INGEST_FAILOVER_SECONDS, and once caught up the index must equal what
 * `listRecords` says each repo holds. Then the leader's connection to PostgreSQL is cut (a TCP
 * proxy drops it): the standby takes over within the same bound, and the old leader stands by.
 */
describe('ingest failover on PostgreSQL', () => {
  let net: LocalNetwork
  let work: string
  let idx: TestIndex
  let env: Record<string, string>
  const children: Child[] = []
  let accounts: WritingAccount[] = []
  const writeBurst = burstWriter({ updates: 3, deletes: 2, creates: 8, postEvery: 4 })
  const failovers: number[] = []

  const burst = () => writeBurst(accounts)

  /** Writes bursts until `stop` resolves. */
  async function writeUntil(stop: Promise<unknown>): Promise<void> {
    let done = false
    void stop.finally(() => (done = true))
    while (!done) await burst()
  }

  const spawn = (over: Record<string, string> = {}) => {
    const child = spawnIngest({ ...env, ...over }, [], true)
    children.push(child)
    return child
  }
  const leading = (c: Child) => c.stderr().includes('ingest leading')
  const cursor = () => withIndex(idx.target, (db) => db.selectFrom('cursor').select(['seq', 'updatedAt']).executeTakeFirst())

  /** Resolves to the seconds from `since` until the index's cursor row is written after it (a commit by the new leader). */
  async function writtenAfter(since: number): Promise<number> {
    let at = 0
    await waitFor(
      'a commit after the failover',
      async () => {
        const row = await cursor()
        at = row ? Date.parse(row.updatedAt) : 0
        return at > since
      },
      FAILOVER_SECONDS * 3000,
      20,
    )
    return (at - since) / 1000
  }

  /** Waits until the index has every event the PDS sequenced and no backfill runs. */
  async function caughtUp(): Promise<void> {
    const head = (await net.network.pds.ctx.sequencer.curr()) ?? 0
    const backfill = () => withIndex(idx.target, (db) => db.selectFrom('backfill').select('status').executeTakeFirst())
    await waitFor(`the index to reach seq ${head}`, async () => ((await cursor())?.seq ?? 0) >= head && (await backfill())?.status !== 'running', 60_000)
  }

  async function expectExact(): Promise<void> {
    const truth = await groundTruth(
      net.pdsUrl,
      accounts.map((a) => a.did),
    )
    expect(Object.fromEntries(await indexedVersions(idx.target))).toEqual(Object.fromEntries(truth))
  }

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-ingest-failover-'))
    idx = await testIndex('postgres', work)
    net = await startNetwork()
    accounts = await writingAccounts(net, 'failover', ACCOUNTS)
    env = ingestEnv(net, idx, { INGEST_FAILOVER_SECONDS: String(FAILOVER_SECONDS) })
    await burst()
  })

  afterAll(async () => {
    for (const c of children) c.child.kill('SIGKILL')
    await Promise.all(children.map((c) => c.exited))
    await net?.close()
    await idx?.stop()
    await fs.rm(work, { recursive: true, force: true })
  })

  it(`hands the stream to the standby within INGEST_FAILOVER_SECONDS each of ${KILLS} times the leader is SIGKILLed, and the index stays exact`, async () => {
    let leader = spawn()
    await waitFor('the first leader', () => leading(leader), 60_000)
    let standby = spawn()
    await waitFor('the standby', () => standby.stderr().includes('ingest standing by'), 60_000)
    await waitFor(
      'the first backfill',
      async () => (await withIndex(idx.target, (db) => db.selectFrom('backfill').select('status').executeTakeFirst()))?.status === 'done',
      60_000,
    )
    await burst() // the first start follows the live tail: an event gives it a cursor to resume from
    await caughtUp()
    await expectExact()
    for (let k = 0; k < KILLS; k++) {
      let killed = 0
      const takenOver = (async () => {
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 700)) // mid-stream
        killed = Date.now()
        leader.child.kill('SIGKILL')
        await leader.exited
        failovers.push(await writtenAfter(killed))
      })()
      await writeUntil(takenOver)
      await takenOver
      await waitFor('the standby to say it leads', () => leading(standby), 10_000)
      expect(failovers[k]).toBeLessThan(FAILOVER_SECONDS)
      ;[leader, standby] = [standby, spawn()]
      await waitFor('a new standby', () => standby.stderr().includes('ingest standing by'), 60_000)
      await caughtUp()
      await expectExact()
    }
    process.stdout.write(`failover after SIGKILL (leader killed → standby's first commit), s: ${failovers.map((s) => s.toFixed(2)).join(', ')}\n`)
    const stopped = leader.exited
    leader.child.kill('SIGTERM')
    expect(await stopped).toBe(0)
    await waitFor('the standby to lead after a clean stop', () => leading(standby), FAILOVER_SECONDS * 1000)
    standby.child.kill('SIGTERM')
    expect(await standby.exited).toBe(0)
  })

  it('hands over when the leader loses its connection to PostgreSQL, and the old leader stands by', async () => {
    const proxy = await startProxy(idx.postgres!.port)
    try {
      const viaProxy = idx.target.replace(`127.0.0.1:${idx.postgres!.port}`, new URL(proxy.url).host)
      const leader = spawn({ INDEX_DATABASE_URL: viaProxy })
      await waitFor('the leader behind the proxy', () => leading(leader), 60_000)
      const standby = spawn()
      await waitFor('the standby', () => standby.stderr().includes('ingest standing by'), 60_000)
      const cut = Date.now()
      const takenOver = (async () => {
        proxy.drop()
        return writtenAfter(cut)
      })()
      await writeUntil(takenOver)
      const seconds = await takenOver
      expect(seconds).toBeLessThan(FAILOVER_SECONDS)
      await waitFor('the standby to say it leads', () => leading(standby), 10_000)
      await waitFor(
        'the old leader to stand by',
        () => (leader.stderr().match(/ingest standing by/g) ?? []).length >= 1 && /leadership ended/.test(leader.stderr()),
        60_000,
      )
      await caughtUp()
      await expectExact()
      process.stdout.write(`failover after a lost connection: ${seconds.toFixed(2)} s\n`)
    } finally {
      await proxy.close()
    }
  })
})

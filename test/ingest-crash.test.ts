import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { TID } from '@atproto/common-web'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { waitFor } from '../src/wait.js'
import { BACKENDS, testIndex, type TestIndex } from './support/backend.js'
import { burstWriter, groundTruth, ingestEnv, indexedVersions, readIndex, spawnIngest, writingAccounts, type WritingAccount } from './support/ingest.js'

/** Each round starts two processes: on a busy machine (load 8 on 2 cores) ten rounds take minutes. */
const ROUNDS_TIMEOUT_MS = 360_000
const ACCOUNTS = 4

/**
 * Crash safety: the ingest (the CLI, then test/support/ingest-child.ts: the same ingest, quicker
 * to start), as a child process, is killed with SIGKILL at
 * random points while records are created, updated and deleted, during the live stream and
 * during backfills; after each restart the index must equal what `listRecords` says each repo
 * holds: nothing missing, nothing extra, no stale version, nothing twice. On each index engine.
 */
describe.each(BACKENDS)('ingest under SIGKILL (%s)', (backend) => {
  // The restart logic is the same on both engines; PostgreSQL's own crash cases are in ingest-failover.test.ts.
  const KILLS = backend === 'sqlite' ? 10 : 5
  let net: LocalNetwork
  let work: string
  let idx: TestIndex
  let indexFile: string
  let env: Record<string, string>
  let accounts: WritingAccount[] = []
  const writeBurst = burstWriter({ updates: 4, deletes: 3, creates: 12, postEvery: 2 })

  const burst = () => writeBurst(accounts)

  /**
   * Waits until the index has every event the PDS sequenced (or, following the live tail of an idle
   * PDS, has no cursor to advance: seq -1) and no backfill is running.
   */
  async function caughtUp(p: ReturnType<typeof spawnIngest>): Promise<void> {
    await untilLog(p, 'firehose connected') // the restarted process itself, not the index its predecessor left
    const head = (await net.network.pds.ctx.sequencer.curr()) ?? 0
    await waitFor(
      `the ingest to reach seq ${head}`,
      async () => {
        const cursor = (await readIndex(indexFile, (db) => db.selectFrom('cursor').select('seq').executeTakeFirst()))?.seq
        const backfill = await backfillStatus()
        return cursor !== undefined && (cursor >= head || cursor === -1) && backfill !== undefined && backfill !== 'running'
      },
      90_000,
    ).catch((err) => {
      throw new Error(`${err.message}; ingest log:\n${p.stderr().slice(-3000)}`)
    })
  }

  async function expectExact(): Promise<void> {
    const truth = await groundTruth(
      net.pdsUrl,
      accounts.map((a) => a.did),
    )
    expect(Object.fromEntries(await indexedVersions(indexFile))).toEqual(Object.fromEntries(truth))
  }

  const backfillStatus = async () => (await readIndex(indexFile, (db) => db.selectFrom('backfill').select('status').executeTakeFirst()))?.status

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const untilLog = (p: ReturnType<typeof spawnIngest>, text: string) => waitFor(`"${text}" from the ingest`, () => p.stderr().includes(text), 60_000)
  const kill = async (p: ReturnType<typeof spawnIngest>) => {
    p.child.kill('SIGKILL')
    await p.exited
  }
  const stop = async (p: ReturnType<typeof spawnIngest>) => {
    p.child.kill('SIGTERM')
    expect(await p.exited).toBe(0)
  }

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-ingest-crash-'))
    idx = await testIndex(backend, work)
    indexFile = idx.target
    net = await startNetwork()
    accounts = await writingAccounts(net, 'crash', ACCOUNTS)
    for (const { did, agent } of accounts) {
      // bulk of other collections, so a backfill (getRepo + verify) takes a while
      for (let b = 0; b < 3; b++) {
        const writes = Array.from({ length: 200 }, () => ({
          $type: 'com.atproto.repo.applyWrites#create',
          collection: 'app.bsky.feed.post',
          rkey: TID.nextStr(),
          value: { $type: 'app.bsky.feed.post', text: 'filler', createdAt: new Date().toISOString() },
        }))
        await agent.com.atproto.repo.applyWrites({ repo: did, writes: writes as never, validate: false })
      }
    }
    env = ingestEnv(net, idx, { INGEST_BACKFILL_CONCURRENCY: '1' })
    await burst()
  })

  afterAll(async () => {
    await net?.close()
    await idx?.stop()
    await fs.rm(work, { recursive: true, force: true })
  })

  it(
    `restarts to an exact index after ${KILLS} SIGKILLs during the live stream`,
    async () => {
      let p = spawnIngest(env) // the CLI first; restarts use the same ingest without the rest of the CLI (faster)
      for (let k = 0; k < KILLS; k++) {
        await caughtUp(p)
        await expectExact()
        const writing = burst()
        await sleep(Math.random() * 800)
        await kill(p)
        await writing
        p = spawnIngest(env, [], true)
      }
      await caughtUp(p)
      await expectExact()
      await stop(p)
    },
    ROUNDS_TIMEOUT_MS,
  )

  it(
    `restarts to an exact index after ${KILLS} SIGKILLs during backfills`,
    async () => {
      let midBackfill = 0
      // a kill that lands after the backfill finished does not count: the round is repeated
      for (let round = 0; midBackfill < KILLS && round < KILLS * 3; round++) {
        if (round === 0) {
          // first start on an empty index: no cursor, a fresh backfill
          const fresh = await idx.another('backfills')
          indexFile = fresh.target
          env = { ...env, ...fresh.env }
        }
        const p = spawnIngest(env, round === 0 ? [] : ['--backfill'], true)
        await untilLog(p, 'backfill starting')
        const writing = burst()
        await sleep(Math.random() * 250) // backfills here take 0.4-1.3 s
        const running = (await backfillStatus()) === 'running'
        await kill(p)
        if (running) midBackfill++
        await writing
        const resumed = spawnIngest(env, [], true) // resumes the interrupted backfill
        await caughtUp(resumed)
        await expectExact()
        await stop(resumed)
      }
      expect(midBackfill).toBe(KILLS)
    },
    ROUNDS_TIMEOUT_MS,
  )
})

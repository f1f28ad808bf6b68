import { Writable } from 'node:stream'
import { ObjectId } from 'mongodb'
import PQueue from 'p-queue'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runLive } from '../src/services.js'
import { Ledger } from '../src/writer/ledger.js'
import type { Live } from '../src/writer/live.js'
import { addUser, listRepo, pixelArt, putMedia, type AcUser } from './support/ac.js'
import { startStack, waitFor, type Stack } from './support/stack.js'

const MOOD = 'computer.aesthetic.mood'

/** Log lines of a test logger, parsed. */
function captureLog() {
  const lines: Array<Record<string, any>> = []
  const sink = new Writable({
    write: (chunk, _enc, done) => (
      lines.push(
        ...String(chunk)
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l)),
      ),
      done()
    ),
  })
  return { log: pino({ level: 'info' }, sink), lines }
}

/** Inserts a mood for `user` and resolves with the milliseconds until its record is in the repo. */
async function moodLatency(stack: Stack, user: AcUser, text: string): Promise<number> {
  const _id = new ObjectId()
  const started = Date.now()
  await stack.mongo.collection('moods').insertOne({ _id, mood: text, when: new Date(), user: user.sub })
  await waitFor(
    `the mood ${text}`,
    async () => [...(await listRepo(stack, user.did, MOOD)).values()].some((r) => r.value.ref === _id.toHexString()),
    30_000,
    25,
  )
  return Date.now() - started
}

describe('writer live at scale: never waits for a reconcile pass, nor for one user', () => {
  let stack: Stack
  let users: AcUser[]
  let live: Live
  const REPOS = 40

  beforeAll(async () => {
    // Object storage 25 ms away, as AC's is: each pass asks it whether each painting's recording
    // exists, so a pass over these repos takes well over 10 s at one repo at a time.
    stack = await startStack({ mediaLatencyMs: 25 })
    const queue = new PQueue({ concurrency: 4 })
    users = await Promise.all(Array.from({ length: REPOS }, (_, i) => queue.add(() => addUser(stack, `user${i}`)) as Promise<AcUser>))
    const when = (j: number) => new Date(Date.UTC(2024, 0, 1, 0, j))
    await stack.mongo
      .collection('moods')
      .insertMany(users.flatMap((u, i) => Array.from({ length: 20 }, (_, j) => ({ _id: new ObjectId(), mood: `mood ${i}.${j}`, when: when(j), user: u.sub }))))
    const png = await pixelArt(32)
    for (const [i, u] of users.entries()) {
      for (let j = 0; j < 12; j++) await putMedia(stack, 'user-aesthetic-computer', `${u.sub}/painting/p${i}-${j}.png`, png)
      await stack.mongo.collection('paintings').insertMany(
        Array.from({ length: 12 }, (_, j) => ({
          _id: new ObjectId(),
          code: `s${i}x${j}`,
          slug: `p${i}-${j}:r${i}-${j}`,
          when: when(j),
          bucket: 'user-aesthetic-computer',
          user: u.sub,
        })),
      )
    }
    live = await runLive({ ...stack.cfg, WRITER_CONCURRENCY: 1, WRITER_RECONCILE_SECONDS: 1 }, stack.log)
    await live.reconciled()
  }, 600_000)

  afterAll(async () => {
    await live?.stop()
    await stack?.close()
  })

  it('shows a change made during a reconcile pass of 10 s or more within 1 s', async () => {
    await waitFor('the next reconcile pass', () => live.status().reconcile.running, 30_000, 20)
    const pass = live.status().reconcile.passes
    await new Promise((r) => setTimeout(r, 1000))
    const latencies = []
    for (const i of [3, 31, 17, 22]) latencies.push(await moodLatency(stack, users[i], `during the pass ${i}`))
    expect(live.status().reconcile.running).toBe(true) // still the same pass
    await waitFor('the pass to end', () => live.status().reconcile.passes > pass, 120_000)
    expect(live.status().reconcile.lastDurationMs).toBeGreaterThanOrEqual(10_000)
    for (const ms of latencies) expect(ms).toBeLessThan(1000)
  })

  it("records one user's taken handle and another's wrong password as failures, and a third user's edit still shows within 1 s", async () => {
    const [taken, renamed, locked, third] = [users[5], users[6], users[7], users[8]]
    await stack.mongo
      .collection('@handles')
      .updateOne({ _id: renamed.sub as never }, { $set: { handle: taken.pdsHandle.split('.')[0], updatedAt: new Date() } })
    await stack.mongo.collection('users').updateOne({ _id: locked.sub as never }, { $set: { 'atproto.password': 'not-the-password' } })
    const lockedMood = new ObjectId()
    await stack.mongo.collection('moods').insertOne({ _id: lockedMood, mood: 'behind a wrong password', when: new Date(), user: locked.sub })
    expect(await moodLatency(stack, third, 'the third user')).toBeLessThan(1000)

    const ledger = new Ledger(stack.cfg.DATA_DIR)
    try {
      await waitFor(
        'both failures recorded',
        () => ledger.problems().filter((p) => p.action === 'failed' && (p.id === renamed.did || p.id === lockedMood.toHexString())).length === 2,
        20_000,
      )
      const problems = ledger.problems()
      expect(problems.find((p) => p.id === renamed.did)).toMatchObject({
        kind: 'handle',
        reason: expect.stringMatching(/^PDS refused the handle: Handle already taken/),
      })
      expect(problems.find((p) => p.id === lockedMood.toHexString())).toMatchObject({
        kind: 'mood',
        reason: expect.stringMatching(/^login as did:.* failed: /),
      })
    } finally {
      ledger.close()
    }
    expect(live.status().paused).toBeUndefined() // permanent failures are recorded, not retried
  })
})

describe('writer live problems over many reconcile passes', () => {
  let stack: Stack
  let live: Live
  const captured = captureLog()

  beforeAll(async () => {
    stack = await startStack()
    await addUser(stack, 'only')
    const moods = Array.from({ length: 3000 }, (_, i) => ({
      _id: new ObjectId(),
      mood: `accountless ${i}`,
      when: new Date(Date.UTC(2023, 0, 1, 0, i % 1000)),
      user: `auth0|gone${i % 300}`,
    }))
    await stack.mongo.collection('moods').insertMany(moods)
    live = await runLive({ ...stack.cfg, WRITER_RECONCILE_SECONDS: 1 }, captured.log)
  }, 300_000)

  afterAll(async () => {
    await live?.stop()
    await stack?.close()
  })

  it('keeps one row per item with its count over 20 passes, records a bad document added after, and logs it once', async () => {
    await waitFor('20 reconcile passes', () => live.status().reconcile.passes >= 20, 240_000, 200)
    const ledger = new Ledger(stack.cfg.DATA_DIR)
    try {
      const skipped = ledger.problems().filter((p) => p.action === 'skipped')
      expect(skipped).toHaveLength(3000)
      expect(new Set(skipped.map((p) => p.reason))).toEqual(new Set(['owner has no PDS account']))
      expect(Math.min(...skipped.map((p) => p.count))).toBeGreaterThanOrEqual(20)
      // The first sighting was logged once, summed, without the people's identifiers.
      const summary = captured.lines.filter((l) => l.problem === 'skipped: owner has no PDS account')
      expect(summary.map((l) => l.items)).toEqual([3000])
      expect(JSON.stringify(captured.lines)).not.toMatch(/auth0\|gone/)

      const bad = new ObjectId()
      const owner = (await stack.mongo.collection('users').findOne({ 'atproto.did': { $exists: true } }))!
      await stack.mongo.collection('moods').insertOne({ _id: bad, mood: '🌧'.repeat(5001), when: new Date(), user: owner._id })
      await waitFor('the bad document recorded', () => ledger.problems().some((p) => p.id === bad.toHexString()), 20_000)
      expect(ledger.problems().find((p) => p.id === bad.toHexString())).toMatchObject({ action: 'invalid', reason: 'mood: is longer than 5,000 characters' })
      await waitFor('a second pass over it', () => (ledger.problems().find((p) => p.id === bad.toHexString())?.count ?? 0) >= 2, 20_000)
      expect(captured.lines.filter((l) => l.msg === 'writer problem' && l.id === bad.toHexString())).toEqual([
        expect.objectContaining({ level: 40, action: 'invalid', reason: 'mood: is longer than 5,000 characters' }),
      ])
    } finally {
      ledger.close()
    }
  })
})

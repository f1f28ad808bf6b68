import { Writable } from 'node:stream'
import { ObjectId } from 'mongodb'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runBackfill } from '../src/services.js'
import { addUser, listRepo, type AcUser } from './support/ac.js'
import { startStack, type Stack } from './support/stack.js'

/**
 * The PDS's real write limit is 5,000 points per hour per account. To exceed "the hourly
 * budget" within a test, the in-process PDS's `repo-write-hour` limiter is scaled down to
 * 600 points per 4 s window. Everything else (the PDS's limiter, its 429s and ratelimit-*
 * headers, the writer's reaction) is real.
 */
const WINDOW_SECONDS = 4
const WINDOW_POINTS = 600

/** Scales the in-process PDS's `repo-write-hour` limiter (ESM module state, shared with the PDS). */
async function scaleHourlyWriteLimit() {
  const { MemoryRateLimiter } = await import('@atproto/xrpc-server')
  type Limiter = { limiter: { keyPrefix: string; points: number; duration: number }; consume: (...a: unknown[]) => Promise<unknown> }
  const base = Object.getPrototypeOf(MemoryRateLimiter.prototype) as Limiter & { __scaled?: boolean }
  if (base.__scaled) return
  const consume = base.consume
  base.consume = function (this: Limiter, ...args: unknown[]) {
    if (this.limiter.keyPrefix === 'rl-repo-write-hour' && this.limiter.duration !== WINDOW_SECONDS) {
      this.limiter.points = WINDOW_POINTS
      this.limiter.duration = WINDOW_SECONDS
    }
    return consume.apply(this, args)
  }
  base.__scaled = true
}

describe('writer under PDS rate limits', () => {
  let stack: Stack
  let user: AcUser
  const lines: Array<Record<string, unknown>> = []

  beforeAll(async () => {
    await scaleHourlyWriteLimit()
    stack = await startStack({ rateLimits: true })
    stack.log = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, done) {
          lines.push(JSON.parse(chunk.toString()))
          done()
        },
      }),
    )
    user = await addUser(stack, 'prolific')
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('finishes a backfill larger than the write budget without a failed item, waiting and saying why', async () => {
    const moods = 450 // 1,350 points: more than two windows' budget
    await stack.mongo
      .collection('moods')
      .insertMany(
        Array.from({ length: moods }, (_, i) => ({ _id: new ObjectId(), mood: `mood ${i}`, when: new Date(Date.UTC(2024, 0, 1, 0, 0, i)), user: user.sub })),
      )
    const started = Date.now()
    const report = await runBackfill(stack.cfg, stack.log)
    expect(report.problems).toEqual([])
    expect(report.counts.mood.create).toBe(moods)
    expect((await listRepo(stack, user.did, 'computer.aesthetic.mood')).size).toBe(moods)
    const waits = lines.filter((l) => l.msg === 'waiting for the PDS write rate limit to reset')
    expect(waits.length).toBeGreaterThanOrEqual(2)
    expect(waits[0]).toMatchObject({ did: user.did, policy: `${WINDOW_POINTS};w=${WINDOW_SECONDS}`, why: expect.any(String) })
    expect(Date.now() - started).toBeGreaterThanOrEqual(WINDOW_SECONDS * 1000)
  })
})

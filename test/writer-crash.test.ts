import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runAudit } from '../src/services.js'
import { listRepo } from './support/ac.js'
import { spawnCli } from './support/children.js'
import { seedStack, startStack, waitFor, writerEnv, type Stack } from './support/stack.js'

/** The writer's environment here: 4 repos at once, no reconcile passes. */
const crashEnv = (stack: Stack) => writerEnv(stack, { WRITER_CONCURRENCY: '4', WRITER_RECONCILE_SECONDS: '0' })

/** Runs `ac-appview writer backfill` as its own process; kills it with SIGKILL after `killAfterMs` if given. */
function backfillProcess(stack: Stack, killAfterMs?: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const env = crashEnv(stack)
  return new Promise((resolve) => {
    const child = spawnCli(['writer', 'backfill', '--json'], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stderr })
    })
  })
}

describe('writer crash safety', () => {
  let stack: Stack

  beforeAll(async () => {
    stack = await startStack()
    await seedStack(stack, { scale: 'small', seed: 11 })
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('survives SIGKILL at 10 random points of one backfill: no duplicates, nothing missing', async () => {
    // Kill points between 0.8 s and 3.8 s: start-up takes about 1 s, a whole run about 4 s here.
    let killed = 0
    for (let i = 0; i < 10; i++) {
      const run = await backfillProcess(stack, 800 + Math.floor(Math.random() * 3000))
      if (run.signal === 'SIGKILL') killed++
      else expect(run.code, run.stderr).toBe(0) // finished before its kill point: fine
    }
    expect(killed).toBeGreaterThanOrEqual(5)
    const final = await backfillProcess(stack)
    expect(final.code, final.stderr).toBe(0)
    const report = await runAudit(stack.cfg, stack.log, {})
    expect(report.findings).toEqual([])
    expect(report.clean).toBe(true)
  })

  it('writer live killed with SIGKILL and restarted loses no change and duplicates none', async () => {
    const user = (await stack.mongo.collection('users').findOne({ 'atproto.did': { $exists: true }, _id: { $ne: 'art-guest' as never } }))!
    const ids: ObjectId[] = []
    let writing = true
    const writer = (async () => {
      while (writing) {
        const _id = new ObjectId()
        await stack.mongo.collection('moods').insertOne({ _id, mood: `change ${ids.length}`, when: new Date(), user: user._id })
        ids.push(_id)
        if (ids.length % 3 === 0) await stack.mongo.collection('moods').updateOne({ _id: ids[ids.length - 2] }, { $set: { mood: `edited ${ids.length}` } })
        await new Promise((r) => setTimeout(r, 150))
      }
    })()
    for (let i = 0; i < 4; i++) {
      const child = spawnCli(['writer', 'live'], { env: crashEnv(stack), stdio: 'ignore' })
      await new Promise((r) => setTimeout(r, 2500 + Math.random() * 2500))
      child.kill('SIGKILL')
      await new Promise((r) => child.once('exit', r))
    }
    writing = false
    await writer
    const child = spawnCli(['writer', 'live'], { env: crashEnv(stack), stdio: 'ignore' })
    try {
      const mirrored = async () => {
        const records = [...(await listRepo(stack, user.atproto.did, 'computer.aesthetic.mood')).values()]
        return ids.every((id) => records.filter((r) => r.value.ref === id.toHexString()).length === 1)
      }
      await waitFor('every change mirrored exactly once', mirrored, 60_000)
      for (const id of ids) {
        const doc = (await stack.mongo.collection('moods').findOne({ _id: id }))!
        await waitFor(
          `the latest text of ${id}`,
          async () =>
            [...(await listRepo(stack, user.atproto.did, 'computer.aesthetic.mood')).values()].some(
              (r) => r.value.ref === id.toHexString() && r.value.mood === doc.mood,
            ),
          30_000,
        )
      }
      // The restarted writer may still be replaying changes from before the kills: it must
      // converge on MongoDB's state (every record, text and back-reference right) by itself.
      let findings: unknown[] = []
      await waitFor('a clean audit', async () => (findings = (await runAudit(stack.cfg, stack.log, {})).findings).length === 0, 30_000).catch(() => {})
      expect(findings).toEqual([])
    } finally {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    }
    expect((await runAudit(stack.cfg, stack.log, {})).findings).toEqual([])
  })
})

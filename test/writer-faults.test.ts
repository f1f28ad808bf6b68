import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runAudit, runLive } from '../src/services.js'
import type { Live } from '../src/writer/live.js'
import { addUser, listRepo, type AcUser } from './support/ac.js'
import { startCutProxy } from './support/cut-proxy.js'
import { startStack, waitFor, type Stack } from './support/stack.js'

const MOOD = 'computer.aesthetic.mood'

/** `writer live` through outages: every change mirrored when the other side returns, none twice. */
describe('writer live under faults', () => {
  let stack: Stack
  let user: AcUser
  let live: Live
  let proxy: Awaited<ReturnType<typeof startCutProxy>>

  const insertMoods = async (label: string, n: number) => {
    const ids = Array.from({ length: n }, () => new ObjectId())
    for (const [i, _id] of ids.entries()) await stack.mongo.collection('moods').insertOne({ _id, mood: `${label} ${i}`, when: new Date(), user: user.sub })
    return ids
  }

  /** True once every id has a record in the repo. */
  const allMirrored = async (ids: ObjectId[]) => {
    const refs = new Set([...(await listRepo(stack, user.did, MOOD)).values()].map((r) => r.value.ref))
    return ids.every((id) => refs.has(id.toHexString()))
  }

  /** Each id has exactly one record in the repo. */
  const expectMirroredOnce = async (ids: ObjectId[]) => {
    const refs = [...(await listRepo(stack, user.did, MOOD)).values()].map((r) => r.value.ref)
    for (const id of ids)
      expect(
        refs.filter((r) => r === id.toHexString()),
        id.toHexString(),
      ).toHaveLength(1)
  }

  beforeAll(async () => {
    stack = await startStack()
    user = await addUser(stack, 'faulty')
    const target = new URL(stack.cfg.MONGODB_URI!.replace('mongodb://', 'http://'))
    proxy = await startCutProxy({ host: target.hostname, port: Number(target.port) })
    const cfg = {
      ...stack.cfg,
      MONGODB_URI: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true&serverSelectionTimeoutMS=2000`,
      WRITER_RECONCILE_SECONDS: 0,
    }
    live = await runLive(cfg, stack.log)
  })

  afterAll(async () => {
    await live?.stop()
    await proxy?.close()
    await stack?.close()
  })

  it('keeps its place while the PDS is down and mirrors everything once it returns', async () => {
    const before = await insertMoods('before', 3)
    await waitFor('the first moods', () => allMirrored(before))
    await stack.net.stopPds()
    const during = await insertMoods('during PDS outage', 5)
    await waitFor('the writer to notice', () => live.status().paused !== undefined, 20_000)
    expect(live.status().backlog).toBe(5) // every change of that repo waits in its lane, none is lost
    await stack.net.startPds()
    await waitFor('every change mirrored', () => allMirrored(during), 60_000)
    await expectMirroredOnce([...before, ...during])
  })

  it('reopens the change stream after MongoDB is cut off, losing and duplicating nothing', async () => {
    proxy.cut()
    const during = await insertMoods('during MongoDB outage', 5) // written straight to the server
    await new Promise((r) => setTimeout(r, 3000))
    proxy.restore()
    await waitFor('every change mirrored', () => allMirrored(during), 60_000)
    await expectMirroredOnce(during)
    const after = await insertMoods('after', 2)
    await waitFor('later changes too', () => allMirrored(after), 30_000)
    await expectMirroredOnce(after)
    expect((await runAudit(stack.cfg, stack.log, {})).findings).toEqual([])
  })
})

import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runAudit, runLive } from '../src/services.js'
import type { Live } from '../src/writer/live.js'
import { addUser, listRepo, pixelArt, addPainting, type AcUser } from './support/ac.js'
import { startStack, waitFor, type Stack } from './support/stack.js'

const PAINTING = 'computer.aesthetic.painting'
const MOOD = 'computer.aesthetic.mood'
const KIDLISP = 'computer.aesthetic.kidlisp'

describe('writer live', () => {
  let stack: Stack
  let bo: AcUser
  let live: Live

  const byRef = async (did: string, collection: string, id: ObjectId) =>
    [...(await listRepo(stack, did, collection)).entries()].find(([, r]) => r.value.ref === id.toHexString())

  beforeAll(async () => {
    stack = await startStack()
    bo = await addUser(stack, 'bo')
    stack.cfg.WRITER_RECONCILE_SECONDS = 0
    live = await runLive(stack.cfg, stack.log)
  })

  afterAll(async () => {
    await live?.stop()
    await stack?.close()
  })

  it('mirrors inserts within seconds and writes the back-references', async () => {
    const p = await addPainting(stack, bo, { code: 'Lv1', png: await pixelArt(64) })
    const moodId = new ObjectId()
    await stack.mongo.collection('moods').insertOne({ _id: moodId, mood: 'live!', when: new Date(), user: bo.sub })
    await waitFor('the painting and the mood', async () => !!(await byRef(bo.did, PAINTING, p._id)) && !!(await byRef(bo.did, MOOD, moodId)), 20_000)
    await waitFor('the back-reference', async () => !!(await stack.mongo.collection('moods').findOne({ _id: moodId }))?.atproto?.cid)
  })

  it('mirrors edits in place, nukes as deletes, un-nukes at the same key, and removed documents', async () => {
    const moodId = new ObjectId()
    await stack.mongo.collection('moods').insertOne({ _id: moodId, mood: 'v1', when: new Date(), user: bo.sub })
    await waitFor('the mood', async () => !!(await byRef(bo.did, MOOD, moodId)))
    const [rkey] = (await byRef(bo.did, MOOD, moodId))!

    await stack.mongo.collection('moods').updateOne({ _id: moodId }, { $set: { mood: 'v2' } })
    await waitFor('the edit', async () => (await byRef(bo.did, MOOD, moodId))?.[1].value.mood === 'v2')
    expect((await byRef(bo.did, MOOD, moodId))![0]).toBe(rkey)

    await stack.mongo.collection('moods').updateOne({ _id: moodId }, { $set: { deleted: true } })
    await waitFor('the delete', async () => !(await byRef(bo.did, MOOD, moodId)))
    await stack.mongo.collection('moods').updateOne({ _id: moodId }, { $unset: { deleted: '' } })
    await waitFor('the return', async () => (await byRef(bo.did, MOOD, moodId))?.[0] === rkey)

    const kid = new ObjectId()
    await stack.mongo.collection('kidlisp').insertOne({ _id: kid, code: 'lv2', source: '(wipe red)', hash: 'h-lv2', when: new Date(), user: bo.sub })
    await waitFor('the kidlisp', async () => !!(await byRef(bo.did, KIDLISP, kid)))
    await stack.mongo.collection('kidlisp').deleteOne({ _id: kid })
    await waitFor('the removal', async () => !(await byRef(bo.did, KIDLISP, kid)))
  })

  it('re-creates nothing for a user whose PDS account was removed', async () => {
    const gone = await addUser(stack, 'gone')
    await stack.mongo.collection('users').updateOne({ _id: gone.sub as never }, { $unset: { atproto: '' } })
    const moodId = new ObjectId()
    await stack.mongo.collection('moods').insertOne({ _id: moodId, mood: 'into the void', when: new Date(), user: gone.sub })
    const marker = new ObjectId()
    await stack.mongo.collection('moods').insertOne({ _id: marker, mood: 'marker', when: new Date(), user: bo.sub })
    await waitFor('the marker after it', async () => !!(await byRef(bo.did, MOOD, marker)))
    expect((await listRepo(stack, gone.did, MOOD)).size).toBe(0)
  })

  it("follows a new AC handle with the user's PDS handle", async () => {
    await stack.mongo.collection('@handles').updateOne({ _id: bo.sub as never }, { $set: { handle: 'bo_renamed', updatedAt: new Date() } })
    const agent = stack.net.network.pds.getAgent()
    await waitFor('the new PDS handle', async () => (await agent.com.atproto.repo.describeRepo({ repo: bo.did })).data.handle === 'bo-renamed.test', 20_000)
    await waitFor(
      'users.atproto.handle',
      async () => (await stack.mongo.collection('users').findOne({ _id: bo.sub as never }))!.atproto.handle === 'bo-renamed.test',
    )
  })

  it('leaves MongoDB and the repos in agreement (audit clean)', async () => {
    const report = await runAudit(stack.cfg, stack.log, {})
    expect(report.findings).toEqual([])
  })
})

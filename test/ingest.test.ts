import { AtpAgent } from '@atproto/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startIndexing, startStack, waitFor, xrpc, type Stack } from './support/stack.js'

/** The ingest against a real PDS firehose: legacy shapes, quarantine, updates, deletes, identity. */
describe('ingest', () => {
  let stack: Stack
  let indexing: Awaited<ReturnType<typeof startIndexing>>
  let agent: AtpAgent
  let did: string
  let handle: string

  const create = async (collection: string, record: Record<string, unknown>) =>
    (await agent.com.atproto.repo.createRecord({ repo: did, collection, record, validate: false })).data

  const item = (uri: string) => indexing.index.selectFrom('item').selectAll().where('uri', '=', uri).executeTakeFirst()
  const quarantined = (uri: string) => indexing.index.selectFrom('quarantine').selectAll().where('uri', '=', uri).executeTakeFirst()

  beforeAll(async () => {
    stack = await startStack()
    indexing = await startIndexing(stack)
    const account = await stack.net.createAccount('ingester')
    ;({ did, handle } = account)
    agent = new AtpAgent({ service: stack.net.pdsUrl })
    await agent.login({ identifier: did, password: account.password })
  })

  afterAll(async () => {
    await indexing?.close()
    await stack?.close()
  })

  it("normalises AC's legacy mood shape (text, mongoId) instead of dropping it", async () => {
    const { uri } = await create('computer.aesthetic.mood', { $type: 'computer.aesthetic.mood', text: 'legacy 🌧', when: '2025-01-02T03:04:05.000Z', mongoId: '65a1b2c3d4e5f60718293a4b' })
    await waitFor('the legacy mood', async () => !!(await item(uri)))
    const { body } = await xrpc(indexing.url, 'computer.aesthetic.media.getAuthorFeed', { actor: handle, kind: 'mood' })
    expect(body.items.find((i: any) => i.uri === uri)).toMatchObject({ kind: 'mood', mood: 'legacy 🌧', author: { did, handle } })
  })

  it('quarantines a record that violates its lexicon, with the reason, and keeps going', async () => {
    const bad = await create('computer.aesthetic.kidlisp', { $type: 'computer.aesthetic.kidlisp', source: '(wipe)', code: 'this-code-is-too-long', when: '2025-01-01T00:00:00Z', ref: 'x' })
    const good = await create('computer.aesthetic.piece', { $type: 'computer.aesthetic.piece', slug: 'after-bad', when: '2025-01-01T00:00:00Z', ref: 'y' })
    await waitFor('the good record after the bad one', async () => !!(await item(good.uri)))
    const q = await quarantined(bad.uri)
    expect(q?.reason).toMatch(/code/)
    expect(await item(bad.uri)).toBeUndefined()
  })

  it('quarantines a blob of the wrong mime type', async () => {
    const blob = (await agent.com.atproto.repo.uploadBlob(new TextEncoder().encode('not an image'), { encoding: 'text/plain' })).data.blob
    const { uri } = await create('computer.aesthetic.painting', {
      $type: 'computer.aesthetic.painting',
      slug: 's',
      code: 'Mime',
      imageUrl: 'https://aesthetic.computer/media/paintings/Mime.png',
      when: '2025-01-01T00:00:00Z',
      ref: '65a1b2c3d4e5f60718293a4c',
      thumbnail: blob,
    })
    await waitFor('the quarantine row', async () => !!(await quarantined(uri)))
    expect((await quarantined(uri))?.reason).toMatch(/mimeType text\/plain/)
  })

  it('indexes updates in place and removes deleted records', async () => {
    const { uri } = await create('computer.aesthetic.mood', { $type: 'computer.aesthetic.mood', mood: 'before', when: '2025-02-01T00:00:00Z', ref: 'a' })
    await waitFor('the mood', async () => !!(await item(uri)))
    const rkey = uri.split('/').pop()!
    await agent.com.atproto.repo.putRecord({ repo: did, collection: 'computer.aesthetic.mood', rkey, record: { $type: 'computer.aesthetic.mood', mood: 'after', when: '2025-02-01T00:00:00Z', ref: 'a' }, validate: false })
    await waitFor('the update', async () => JSON.parse((await item(uri))?.record ?? '{}').mood === 'after')
    await agent.com.atproto.repo.deleteRecord({ repo: did, collection: 'computer.aesthetic.mood', rkey })
    await waitFor('the delete', async () => !(await item(uri)))
  })

  it('ignores collections that only share the prefix', async () => {
    const { uri } = await create('computer.aesthetic.paintingX', { $type: 'computer.aesthetic.paintingX', when: '2025-01-01T00:00:00Z' })
    const marker = await create('computer.aesthetic.piece', { $type: 'computer.aesthetic.piece', slug: 'marker', when: '2025-01-01T00:00:00Z', ref: 'z' })
    await waitFor('the marker', async () => !!(await item(marker.uri)))
    expect(await item(uri)).toBeUndefined()
    expect(await quarantined(uri)).toBeUndefined()
  })

  it('follows handle changes from identity events', async () => {
    const next = `renamed-${Date.now() % 100000}.test`
    await agent.com.atproto.identity.updateHandle({ handle: next })
    await waitFor('the new handle', async () => (await xrpc(indexing.url, 'computer.aesthetic.actor.getProfile', { actor: did })).body.handle === next)
    handle = next
    const { status } = await xrpc(indexing.url, 'computer.aesthetic.media.getAuthorFeed', { actor: next })
    expect(status).toBe(200)
  })

  it('hides the items of a taken-down account and shows them again when restored', async () => {
    const pds = stack.net.network.pds
    const subject = { $type: 'com.atproto.admin.defs#repoRef', did }
    const setTakedown = (applied: boolean) =>
      pds.getAgent().com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied, ref: applied ? 'test' : undefined } }, { headers: pds.adminAuthHeaders(), encoding: 'application/json' })
    const profile = () => xrpc(indexing.url, 'computer.aesthetic.actor.getProfile', { actor: did })
    await setTakedown(true)
    await waitFor('the takedown', async () => (await profile()).status === 400)
    expect((await profile()).body.error).toBe('ActorNotFound')
    await setTakedown(false)
    await waitFor('the restore', async () => (await profile()).status === 200)
  })
})

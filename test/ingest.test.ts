import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { AtpAgent } from '@atproto/api'
import type { LexiconDoc } from '@atproto/lexicon'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Identity } from '../src/identity.js'
import { Indexer } from '../src/ingest/indexer.js'
import { ingestMetrics } from '../src/ingest/metrics.js'
import { recheckQuarantine } from '../src/ingest/quarantine.js'
import { schemas } from '../src/lexicon/lexicons.js'
import { BACKENDS } from './support/backend.js'
import { startIndexing, startStack, waitFor, xrpc, type Stack } from './support/stack.js'

/**
 * The ingest against a real PDS firehose: legacy shapes, lexicon violations and the quarantine
 * (re-checked when lexicons change, listed for operators), updates, deletes, identity and account
 * events, metrics. On each index engine.
 */
describe.each(BACKENDS)('ingest (%s)', (backend) => {
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
    stack = await startStack({ backend })
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
    const { uri } = await create('computer.aesthetic.mood', {
      $type: 'computer.aesthetic.mood',
      text: 'legacy 🌧',
      when: '2025-01-02T03:04:05.000Z',
      mongoId: '65a1b2c3d4e5f60718293a4b',
    })
    await waitFor('the legacy mood', async () => !!(await item(uri)))
    const { body } = await xrpc(indexing.url, 'computer.aesthetic.media.getAuthorFeed', { actor: handle, kind: 'mood' })
    expect(body.items.find((i: any) => i.uri === uri)).toMatchObject({ kind: 'mood', mood: 'legacy 🌧', author: { did, handle } })
  })

  it('quarantines a record that violates its lexicon, with the reason, and keeps going', async () => {
    const bad = await create('computer.aesthetic.kidlisp', {
      $type: 'computer.aesthetic.kidlisp',
      source: '(wipe)',
      code: 'this-code-is-too-long',
      when: '2025-01-01T00:00:00Z',
      ref: 'x',
    })
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
    await agent.com.atproto.repo.putRecord({
      repo: did,
      collection: 'computer.aesthetic.mood',
      rkey,
      record: { $type: 'computer.aesthetic.mood', mood: 'after', when: '2025-02-01T00:00:00Z', ref: 'a' },
      validate: false,
    })
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

  it('quarantines wrong types, missing required fields and oversize strings, each with its reason', async () => {
    const cases = [
      { record: { $type: 'computer.aesthetic.mood', mood: 42, when: '2025-01-01T00:00:00Z', ref: 'a' }, reason: /mood must be a string/ },
      {
        record: { $type: 'computer.aesthetic.painting', code: 'NoSlug', imageUrl: 'https://aesthetic.computer/x.png', when: '2025-01-01T00:00:00Z', ref: 'b' },
        reason: /must have the property "slug"/,
      },
      {
        record: { $type: 'computer.aesthetic.mood', mood: 'x'.repeat(5001), when: '2025-01-01T00:00:00Z', ref: 'c' },
        reason: /mood must not be longer than 5000 graphemes/,
      },
      {
        record: { $type: 'computer.aesthetic.piece', slug: 'bad-when', when: 'yesterday', ref: 'd' },
        reason: /when must be an valid atproto datetime|when must be a valid datetime/,
      },
    ]
    const uris: string[] = []
    for (const c of cases) uris.push((await create(c.record.$type, c.record)).uri)
    await waitFor('every bad record in quarantine', async () => (await Promise.all(uris.map(quarantined))).every(Boolean))
    for (const [i, c] of cases.entries()) {
      expect((await quarantined(uris[i]))?.reason).toMatch(c.reason)
      expect(await item(uris[i])).toBeUndefined()
    }
  })

  it("accepts AC's legacy tape and painting shapes (thumbnail, zipUrl, undeclared acUrl)", async () => {
    const mp4 = Buffer.from('000000186674797069736f6d0000020069736f6d69736f32', 'hex')
    const jpeg = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#f00' } })
      .jpeg()
      .toBuffer()
    const video = (await agent.com.atproto.repo.uploadBlob(mp4, { encoding: 'video/mp4' })).data.blob
    const thumbnail = (await agent.com.atproto.repo.uploadBlob(jpeg, { encoding: 'image/jpeg' })).data.blob
    const tape = await create('computer.aesthetic.tape', {
      $type: 'computer.aesthetic.tape',
      slug: 't',
      code: 'Tap',
      when: '2025-01-01T00:00:00Z',
      video,
      thumbnail,
      zipUrl: 'https://art.example/t.zip',
      acUrl: 'https://aesthetic.computer/!Tap',
      ref: '65a1b2c3d4e5f60718293a4d',
    })
    const paintingRec = await create('computer.aesthetic.painting', {
      $type: 'computer.aesthetic.painting',
      slug: 's',
      code: 'Leg',
      imageUrl: 'https://aesthetic.computer/media/paintings/Leg.png',
      acUrl: 'https://aesthetic.computer/#Leg',
      when: '2025-01-01T00:00:00Z',
      ref: '65a1b2c3d4e5f60718293a4e',
    })
    await waitFor('the legacy tape and painting', async () => !!(await item(tape.uri)) && !!(await item(paintingRec.uri)))
    const { body } = await xrpc(indexing.url, 'computer.aesthetic.media.resolveCode', { code: '!Tap' })
    expect(body.item).toMatchObject({ kind: 'tape', code: 'Tap', video: expect.stringMatching(/getBlob/), thumb: expect.stringMatching(/getBlob/) })
  })

  it('re-checks the quarantine when the lexicons change, releasing what they now accept', async () => {
    const { uri } = await create('computer.aesthetic.kidlisp', {
      $type: 'computer.aesthetic.kidlisp',
      source: '(ink)',
      code: 'longer-than-10',
      when: '2025-01-01T00:00:00Z',
      ref: 'r',
    })
    await waitFor('the quarantined KidLisp', async () => !!(await quarantined(uri)))
    const widened = structuredClone(schemas) as LexiconDoc[]
    const kidlisp = widened.find((d) => d.id === 'computer.aesthetic.kidlisp') as any
    kidlisp.defs.main.record.properties.code.maxLength = 20
    const identity = new Identity({ plcUrl: stack.cfg.PLC_URL, allowPrivateNetwork: true, log: stack.log })
    const indexer = new Indexer({ db: indexing.index, identity, trustedPds: stack.cfg.trustedPds, log: stack.log })
    const result = await recheckQuarantine(indexer, stack.log, widened)
    expect(result.released).toBeGreaterThanOrEqual(1)
    expect(await quarantined(uri)).toBeUndefined()
    expect(JSON.parse((await item(uri))!.record).code).toBe('longer-than-10')
    // unchanged lexicons: nothing to re-check the second time
    expect((await recheckQuarantine(indexer, stack.log, widened)).checked).toBe(0)
  })

  it('lists the quarantine for operators: ac-appview ingest quarantine --json', async () => {
    const root = path.resolve(import.meta.dirname, '..')
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'bin/ac-appview.js'), 'ingest', 'quarantine', '--json'], {
      cwd: root,
      env: { ...process.env, ...stack.index.env, LOG_LEVEL: 'silent' },
    })
    const entries = JSON.parse(stdout)
    expect(entries.length).toBeGreaterThan(0)
    expect(entries[0]).toEqual(
      expect.objectContaining({
        uri: expect.stringMatching(/^at:\/\//),
        reason: expect.any(String),
        firstSeen: expect.any(String),
        record: expect.any(Object),
      }),
    )
  })

  it('exports Prometheus metrics: events, per-collection operations, quarantine, cursor', async () => {
    const text = await ingestMetrics.metrics()
    expect(text).toMatch(/ingest_events_received_total\{service="ws:[^"]+",type="#commit"\} \d+/)
    expect(text).toMatch(/ingest_records_total\{collection="computer.aesthetic.mood",action="create"\} \d+/)
    expect(text).toMatch(/ingest_records_total\{collection="computer.aesthetic.mood",action="delete"\} \d+/)
    expect(text).toMatch(/ingest_quarantined_total\{collection="computer.aesthetic.kidlisp"\} \d+/)
    expect(text).toMatch(/ingest_cursor\{service="ws:[^"]+"\} \d+/)
  })

  it('hides the items of a taken-down account and shows them again when restored', async () => {
    const pds = stack.net.network.pds
    const subject = { $type: 'com.atproto.admin.defs#repoRef', did }
    const setTakedown = (applied: boolean) =>
      pds
        .getAgent()
        .com.atproto.admin.updateSubjectStatus(
          { subject, takedown: { applied, ref: applied ? 'test' : undefined } },
          { headers: pds.adminAuthHeaders(), encoding: 'application/json' },
        )
    const profile = () => xrpc(indexing.url, 'computer.aesthetic.actor.getProfile', { actor: did })
    await setTakedown(true)
    await waitFor('the takedown', async () => (await profile()).status === 400)
    expect((await profile()).body.error).toBe('ActorNotFound')
    await setTakedown(false)
    await waitFor('the restore', async () => (await profile()).status === 200)
  })

  it('hides a deactivated account until it is reactivated', async () => {
    const profile = () => xrpc(indexing.url, 'computer.aesthetic.actor.getProfile', { actor: did })
    await agent.com.atproto.server.deactivateAccount({})
    await waitFor('the deactivation', async () => (await profile()).status === 400)
    await agent.com.atproto.server.activateAccount()
    await waitFor('the reactivation', async () => (await profile()).status === 200)
  })

  it("removes a deleted account's items", async () => {
    const other = await stack.net.createAccount('leaving')
    const otherAgent = new AtpAgent({ service: stack.net.pdsUrl })
    await otherAgent.login({ identifier: other.did, password: other.password })
    const { uri } = (
      await otherAgent.com.atproto.repo.createRecord({
        repo: other.did,
        collection: 'computer.aesthetic.mood',
        record: { $type: 'computer.aesthetic.mood', mood: 'bye', when: '2025-01-01T00:00:00Z', ref: 'z' },
        validate: false,
      })
    ).data
    await waitFor('the mood of the leaving account', async () => !!(await item(uri)))
    const pds = stack.net.network.pds
    await pds.getAgent().com.atproto.admin.deleteAccount({ did: other.did }, { headers: pds.adminAuthHeaders(), encoding: 'application/json' })
    await waitFor('the deletion', async () => !(await item(uri)))
    expect((await indexing.index.selectFrom('actor').select('status').where('did', '=', other.did).executeTakeFirst())?.status).toBe('deleted')
  })
})

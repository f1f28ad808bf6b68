import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import { TestPds } from '@atproto/dev-env'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ingestHealth } from '../src/appview/health.js'
import { ReadModel } from '../src/appview/read-model.js'
import { loadConfig } from '../src/config.js'
import { migrateIndex, openIndex, type IndexDb } from '../src/db/index.js'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { startIngest, type Ingest } from '../src/ingest/firehose.js'
import { Identity } from '../src/identity.js'
import { createLogger } from '../src/log.js'
import { runAppView } from '../src/services.js'
import { waitFor } from '../src/wait.js'
import { BACKENDS, testIndex, type TestIndex } from './support/backend.js'
import { png } from './support/appview.js'
import { groundTruth, indexedVersions } from './support/ingest.js'
import { createPost, deletePost } from './support/posts.js'
import { xrpc } from './support/stack.js'

/**
 * Backfill and hosts: two PDSes on one PLC (the second with a 1 ms firehose window, so any stored
 * cursor is outdated there), records and posts written before the ingest first starts, drift
 * repaired by `--backfill`, and the fallbacks for outdated and future cursors. On each index engine.
 */
describe.each(BACKENDS)('ingest backfill and hosts (%s)', (backend) => {
  let net: LocalNetwork
  let pds2: TestPds
  let work: string
  let idx: TestIndex
  let indexFile: string
  let db: IndexDb
  let ingest: Ingest
  let appUrl: string
  let closeApp: () => Promise<void>
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent')
  const accounts: Array<{ did: string; agent: AtpAgent; pdsUrl: string }> = []
  /** Posts written before the ingest first starts: one it keeps from each PDS, and two it does not. */
  const posts: Record<'aliceImage' | 'bobLink', string> = { aliceImage: '', bobLink: '' }
  const postsIndexed = async () => (await db.selectFrom('post').select('uri').orderBy('uri').execute()).map((r) => r.uri)

  const start = async (opts: { backfill?: boolean } = {}) => {
    const identity = new Identity({ plcUrl: net.plcUrl, handleResolverUrl: net.pdsUrl, allowPrivateNetwork: true, log })
    ingest = await startIngest({
      db,
      identity,
      services: [net.pdsUrl, pds2.url],
      trustedPds: [new URL(net.pdsUrl).origin],
      log,
      backfill: opts.backfill,
      heartbeatMs: 500,
      postsFor: 'https://aesthetic.computer',
    })
  }
  const write = async (i: number, collection: string, record: Record<string, unknown>) =>
    (await accounts[i].agent.com.atproto.repo.createRecord({ repo: accounts[i].did, collection, record: { $type: collection, ...record }, validate: false }))
      .data
  const truth = async () => {
    const all = new Map<string, string>()
    for (const a of accounts) for (const [uri, cid] of await groundTruth(a.pdsUrl, [a.did])) all.set(uri, cid)
    return all
  }
  const expectIndexEqualsTruth = async () => expect(Object.fromEntries(await indexedVersions(indexFile))).toEqual(Object.fromEntries(await truth()))
  const isIndexed = async (uri: string) => (await indexedVersions(indexFile)).has(uri)
  const painting = (code: string, when: string) => ({
    slug: `slug-${code}`,
    code,
    imageUrl: `https://aesthetic.computer/media/paintings/${code}.png`,
    when,
    ref: '65a1b2c3d4e5f60718293a4b',
  })

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-ingest-backfill-'))
    net = await startNetwork()
    pds2 = await TestPds.create({ didPlcUrl: net.plcUrl, repoBackfillLimitMs: 1 })
    for (const [pds, name] of [
      [net.network.pds, 'alice'],
      [pds2, 'bob'],
    ] as const) {
      const agent = new AtpAgent({ service: pds.url })
      const password = `pw-${crypto.randomUUID()}`
      const res = await agent.com.atproto.server.createAccount({ handle: `${name}.test`, password, email: `${name}@example.com` })
      await agent.login({ identifier: res.data.did, password })
      accounts.push({ did: res.data.did, agent, pdsUrl: pds.url })
    }
    // Written before the ingest ever starts: only a backfill can find these.
    await write(0, 'computer.aesthetic.painting', painting('Shared', '2025-01-02T00:00:00.000Z'))
    await write(0, 'computer.aesthetic.mood', { mood: 'before the ingest', when: '2025-01-01T00:00:00.000Z', ref: 'a' })
    await write(0, 'computer.aesthetic.piece', { when: '2025-01-01T00:00:00.000Z', ref: 'no slug' }) // quarantined
    await write(1, 'computer.aesthetic.painting', painting('Shared', '2024-01-01T00:00:00.000Z')) // an earlier claim, from an untrusted PDS
    await write(1, 'computer.aesthetic.mood', { mood: 'on the second PDS', when: '2025-01-01T00:00:00.000Z', ref: 'b' })
    posts.aliceImage = (await createPost(accounts[0], { text: 'my cat', image: await png('#fc0') })).uri // media by an account on TRUSTED_PDS
    posts.bobLink = (await createPost(accounts[1], { text: 'look https://aesthetic.computer/#Shared' })).uri
    await createPost(accounts[0], { text: 'nothing about AC https://example.com' })
    await createPost(accounts[1], { text: 'my dog', image: await png('#0cf') }) // media, but not from TRUSTED_PDS

    idx = await testIndex(backend, work)
    indexFile = idx.target
    db = openIndex(indexFile)
    await migrateIndex(db)
    await start()
    const cfg = loadConfig({
      PDS_URL: net.pdsUrl,
      ...idx.env,
      HOST: '127.0.0.1',
      PORT: '0',
      ALLOW_PRIVATE_NETWORK: 'true',
      DASHBOARD: 'false',
      LOG_LEVEL: 'silent',
    })
    const app = await runAppView(cfg, log)
    appUrl = app.url
    closeApp = () => app.app.close()
  })

  afterAll(async () => {
    await closeApp?.()
    await ingest?.stop()
    await db?.destroy()
    await idx?.stop()
    await pds2?.close()
    await net?.close()
    await fs.rm(work, { recursive: true, force: true })
  })

  it('backfills both PDSes on first start: the index equals listRecords of every repo', async () => {
    await ingest.backfillsSettled()
    await expectIndexEqualsTruth()
    const read = ReadModel.open(indexFile, { log })
    const report = await ingestHealth(read, 60).finally(() => read.close())
    expect(report.ingest.map((h) => h.backfill?.status)).toEqual(['done', 'done'])
    expect(report.quarantined).toBe(1)
    expect(await postsIndexed()).toEqual([posts.aliceImage, posts.bobLink].sort())
    expect(await db.selectFrom('post_ref').select(['post', 'kind', 'key']).execute()).toEqual([{ post: posts.bobLink, kind: 'painting', key: 'Shared' }])
  })

  it('indexes a repo on a second PDS, but its earlier claim on a short code never resolves', async () => {
    const bob = await db.selectFrom('actor').selectAll().where('did', '=', accounts[1].did).executeTakeFirstOrThrow()
    expect(bob).toMatchObject({ pds: new URL(pds2.url).origin, trusted: 0 })
    const { status, body } = await xrpc(appUrl, 'computer.aesthetic.media.resolveCode', { code: '#Shared' })
    expect(status).toBe(200)
    expect(body.item.author.did).toBe(accounts[0].did)
  })

  it('follows both live streams', async () => {
    const [a, b] = [
      await write(0, 'computer.aesthetic.mood', { mood: 'live 1', when: new Date().toISOString(), ref: 'c' }),
      await write(1, 'computer.aesthetic.mood', { mood: 'live 2', when: new Date().toISOString(), ref: 'd' }),
    ]
    await waitFor('both live moods', async () => (await isIndexed(a.uri)) && (await isIndexed(b.uri)), 30_000)
  })

  it('--backfill repairs drift: adds missing, updates changed, deletes gone', async () => {
    await ingest.stop()
    const rows = await db.selectFrom('item').selectAll().where('did', '=', accounts[0].did).execute()
    await db.deleteFrom('item').where('uri', '=', rows[0].uri).execute()
    await db.updateTable('item').set({ cid: 'bafyreibogusbogusbogusbogusbogusbogusbogusbogusbogusbogusbo' }).where('uri', '=', rows[1].uri).execute()
    await db
      .insertInto('item')
      .values({ ...rows[1], uri: `at://${accounts[0].did}/computer.aesthetic.mood/3kgonegonegon` })
      .execute()
    await db.deleteFrom('post').where('uri', '=', posts.aliceImage).execute()
    await db.updateTable('repo').set({ rev: '2222222222222' }).execute() // as if older snapshots were indexed
    await start({ backfill: true })
    await ingest.backfillsSettled()
    await expectIndexEqualsTruth()
    expect(await postsIndexed()).toEqual([posts.aliceImage, posts.bobLink].sort())
  })

  it('falls back to a backfill when the stored cursor is older than the host keeps (OutdatedCursor)', async () => {
    await ingest.stop()
    const { uri } = await write(1, 'computer.aesthetic.mood', { mood: 'while the ingest was down', when: new Date().toISOString(), ref: 'e' })
    // The snapshot supersedes these commits, which the host no longer streams: it must carry the posts too.
    const bobTape = await createPost(accounts[1], { text: 'a tape https://aesthetic.computer/!tShared' })
    await deletePost(accounts[1], posts.bobLink)
    await start()
    await waitFor(
      'the outdated-cursor backfill',
      async () =>
        (await db.selectFrom('backfill').selectAll().where('source', '=', pds2.url.replace('http', 'ws')).executeTakeFirst())?.reason === 'outdated cursor',
      30_000,
    )
    await ingest.backfillsSettled()
    expect(await isIndexed(uri)).toBe(true)
    await expectIndexEqualsTruth()
    expect(await postsIndexed()).toEqual([posts.aliceImage, bobTape.uri].sort())
    expect(await db.selectFrom('post_ref').select(['post', 'kind', 'key']).execute()).toEqual([{ post: bobTape.uri, kind: 'tape', key: 'tShared' }])
  })

  it('falls back to the live tail and a backfill when the stored cursor is in the future (FutureCursor)', async () => {
    await ingest.stop()
    const service = net.pdsUrl.replace('http', 'ws')
    await db.updateTable('cursor').set({ seq: 1_000_000_000 }).where('service', '=', service).execute()
    const { uri } = await write(0, 'computer.aesthetic.mood', { mood: 'after a host reset', when: new Date().toISOString(), ref: 'f' })
    await start()
    await waitFor(
      'the future-cursor backfill',
      async () => (await db.selectFrom('backfill').selectAll().where('source', '=', service).executeTakeFirst())?.reason === 'future cursor',
      30_000,
    )
    await ingest.backfillsSettled()
    expect(await isIndexed(uri)).toBe(true)
    const later = await write(0, 'computer.aesthetic.mood', { mood: 'live again', when: new Date().toISOString(), ref: 'g' })
    await waitFor('a live mood after the reset', () => isIndexed(later.uri), 30_000)
    expect((await db.selectFrom('cursor').select('seq').where('service', '=', service).executeTakeFirstOrThrow()).seq).toBeLessThan(1_000_000_000)
  })
})

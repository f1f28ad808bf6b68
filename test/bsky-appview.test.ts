import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AtpAgent, type AppBskyFeedDefs } from '@atproto/api'
import getPort from 'get-port'
import { MongoClient, type Db } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig, type Config } from '../src/config.js'
import type { IndexDb } from '../src/db/index.js'
import { startMediaServer, type MediaServer } from '../src/dev/media-server.js'
import { startMongo, type MongoHandle } from '../src/dev/mongo-server.js'
import { FEEDS } from '../src/feeds/definitions.js'
import type { Ingest } from '../src/ingest/firehose.js'
import { createLogger } from '../src/log.js'
import { openMigratedIndex, runAppView, runBackfill, runIngest, runPublishFeeds, runShare } from '../src/services.js'
import { waitFor } from '../src/wait.js'
import { pixelArt } from './support/ac.js'
import { startBskyNetwork, type BskyNetwork } from './support/bsky.js'
import { createPost } from './support/posts.js'

/**
 * AC's feeds in Bluesky's own AppView: dev-env's TestNetwork (PLC, PDS, Bluesky's AppView over
 * PostgreSQL), our ingest following its PDS, our AppView serving the feed generator at
 * `did:web:localhost%3A<port>`, the generator records published with `feeds publish`. A painting
 * mirrored by the writer and shared with `writer share` comes back through
 * `app.bsky.feed.getFeed`, hydrated by Bluesky's AppView, image embed and all.
 */
describe("AC's feeds through Bluesky's AppView", () => {
  let bsky: BskyNetwork
  let mongo: MongoHandle
  let mongoClient: MongoClient
  let db: Db
  let media: MediaServer
  let work: string
  let cfg: Config
  let index: IndexDb
  let ingest: Ingest
  let closeAppView: () => Promise<void>
  let viewer: AtpAgent
  let publisher: { did: string; password: string }
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent')

  const account = async (handle: string) => {
    const agent = bsky.network.pds.getAgent()
    const password = `pw-${crypto.randomUUID()}`
    const res = await agent.com.atproto.server.createAccount({ handle: `${handle}.test`, password, email: `${handle}@example.com` })
    const logged = new AtpAgent({ service: bsky.network.pds.url })
    await logged.login({ identifier: res.data.did, password })
    return { did: res.data.did, handle: res.data.handle, password, agent: logged }
  }
  const indexedPost = (uri: string) =>
    waitFor(`our index to hold ${uri}`, async () => !!(await index.selectFrom('post').select('uri').where('uri', '=', uri).executeTakeFirst()))
  const feedUri = (rkey: string) => `at://${publisher.did}/app.bsky.feed.generator/${rkey}`

  beforeAll(async () => {
    bsky = await startBskyNetwork()
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-appview-bsky-'))
    mongo = await startMongo({ dbName: `bsky_${process.pid}` })
    mongoClient = await MongoClient.connect(mongo.uri)
    db = mongoClient.db(mongo.dbName)
    await fs.mkdir(path.join(work, 'media'))
    media = await startMediaServer({ dir: path.join(work, 'media') })
    const ac = await account('aesthetic')
    publisher = { did: ac.did, password: ac.password }
    const port = await getPort({ host: '127.0.0.1' })
    const pds = bsky.network.pds.url
    cfg = loadConfig({
      PDS_URL: pds,
      PLC_URL: bsky.network.plc.url,
      HANDLE_RESOLVER_URL: pds,
      ALLOW_PRIVATE_NETWORK: 'true',
      MONGODB_URI: mongo.uri,
      MONGODB_DB: mongo.dbName,
      AC_STORAGE_URL: `${media.url}/{bucket}`,
      DATA_DIR: path.join(work, 'data'),
      INDEX_DB_PATH: path.join(work, 'index.sqlite'),
      HOST: '127.0.0.1',
      PORT: String(port),
      FEEDGEN_HOSTNAME: `localhost:${port}`,
      AC_BSKY_DID: publisher.did,
      AC_BSKY_PASSWORD: publisher.password,
      LOG_LEVEL: 'silent',
    })
    index = await openMigratedIndex(cfg, log)
    ingest = await runIngest(cfg, log)
    const { app } = await runAppView(cfg, log)
    closeAppView = () => app.close()
    viewer = (await account('viewer')).agent
  })

  afterAll(async () => {
    await closeAppView?.()
    await ingest?.stop()
    await index?.destroy()
    await media?.close()
    await mongoClient?.close()
    await mongo?.stop()
    await bsky?.close()
    if (work) await fs.rm(work, { recursive: true, force: true })
  })

  it('publishes the feed generator records once, and Bluesky finds the generator online', async () => {
    const first = await runPublishFeeds(cfg, log)
    expect(first.map((f) => f.action)).toEqual(FEEDS.map(() => 'create'))
    const again = await runPublishFeeds(cfg, log)
    expect(again.map((f) => f.action)).toEqual(FEEDS.map(() => 'unchanged'))
    await bsky.network.processAll()
    const { data } = await viewer.app.bsky.feed.getFeedGenerator({ feed: feedUri('ac-paintings') })
    expect(data).toMatchObject({
      isOnline: true,
      isValid: true,
      view: { did: cfg.feedgen!.serviceDid, displayName: 'AC paintings', avatar: expect.stringMatching(/^http/) },
    })
    expect(cfg.feedgen!.serviceDid).toMatch(/^did:web:localhost%3A\d+$/)
  })

  it('serves a shared painting, a link card and a mood through getFeed, hydrated with their embeds', async () => {
    const artist = await account('artist')
    await db.collection('users').insertOne({
      _id: 'auth0|artist' as never,
      code: 'acartist',
      when: new Date(),
      atproto: { did: artist.did, handle: artist.handle, password: artist.password },
    })
    await db.collection('@handles').insertOne({ _id: 'auth0|artist' as never, handle: 'artist' })
    const slug = '2025.2.3.4.5.6.789'
    await fs.mkdir(path.join(work, 'media/user-aesthetic-computer/auth0|artist/painting'), { recursive: true })
    await fs.writeFile(path.join(work, `media/user-aesthetic-computer/auth0|artist/painting/${slug}.png`), await pixelArt(32))
    await db
      .collection('paintings')
      .insertOne({ code: 'bsk', slug, when: new Date('2025-02-03T04:05:06.789Z'), user: 'auth0|artist', bucket: 'user-aesthetic-computer' })
    await db.collection('moods').insertOne({ mood: 'bright', when: new Date('2025-02-04T00:00:00Z'), user: 'auth0|artist' })
    const backfill = await runBackfill(cfg, log)
    expect(backfill.counts.painting.create).toBe(1)
    const paintingUri = (await db.collection('paintings').findOne({ code: 'bsk' }))!.atproto.uri as string
    const moodRkey = (await db.collection('moods').findOne({ mood: 'bright' }))!.atproto.rkey as string
    await waitFor('the painting in our index', async () => !!(await index.selectFrom('item').select('uri').where('uri', '=', paintingUri).executeTakeFirst()))

    const shared = await runShare(cfg, log, '#bsk')
    expect((await runShare(cfg, log, '#bsk')).action).toBe('unchanged')
    const fan = await account('fan')
    const card = await createPost({ did: fan.did, agent: fan.agent }, { text: 'this one', external: 'https://aesthetic.computer/#bsk' })
    const moodPost = await createPost(
      { did: publisher.did, agent: (await login(publisher)).agent },
      { text: `@artist: bright\n\nhttps://aesthetic.computer/moods~artist~${moodRkey}`, facets: false },
    )
    for (const uri of [shared.uri!, card.uri, moodPost.uri]) await indexedPost(uri)
    await bsky.network.processAll()

    const paintings = (await viewer.app.bsky.feed.getFeed({ feed: feedUri('ac-paintings') })).data.feed
    expect(paintings.map((i) => i.post.uri)).toEqual([card.uri, shared.uri])
    for (const item of paintings) expect(item.feedContext).toBe(paintingUri)
    const sharedView = paintings[1].post
    expect(sharedView.author).toMatchObject({ did: artist.did, handle: artist.handle })
    expect(sharedView.record).toMatchObject({ text: `New painting by @artist 🎨✨\n\nhttps://aesthetic.computer/painting~@artist/${slug}` })
    expect(sharedView.embed).toMatchObject({
      $type: 'app.bsky.embed.images#view',
      images: [
        {
          alt: 'Painting by @artist on aesthetic.computer',
          thumb: expect.stringMatching(/^http/),
          fullsize: expect.stringMatching(/^http/),
          aspectRatio: { width: 32, height: 32 },
        },
      ],
    })
    expect(paintings[0].post.embed).toMatchObject({
      $type: 'app.bsky.embed.external#view',
      external: { uri: 'https://aesthetic.computer/#bsk', title: 'Aesthetic Computer' },
    })

    const moods = (await new AtpAgent({ service: bsky.network.bsky.url }).app.bsky.feed.getFeed({ feed: feedUri('ac-moods') })).data.feed
    expect(moods.map((i: AppBskyFeedDefs.FeedViewPost) => i.post.uri)).toEqual([moodPost.uri]) // no viewer, no JWT: served all the same
    const all = (await viewer.app.bsky.feed.getFeed({ feed: feedUri('ac-all'), limit: 2 })).data
    expect(all.feed.map((i) => i.post.uri)).toEqual([moodPost.uri, card.uri])
    const rest = (await viewer.app.bsky.feed.getFeed({ feed: feedUri('ac-all'), limit: 2, cursor: all.cursor })).data
    expect(rest.feed.map((i) => i.post.uri)).toEqual([shared.uri])
    const artists = (await viewer.app.bsky.feed.getFeed({ feed: feedUri('ac-artists') })).data.feed
    expect(artists.map((i) => i.post.uri)).toEqual(expect.arrayContaining([shared.uri, moodPost.uri, card.uri]))
  })

  /** A fresh session of an account on the network's PDS. */
  async function login(acc: { did: string; password: string }) {
    const agent = new AtpAgent({ service: bsky.network.pds.url })
    await agent.login({ identifier: acc.did, password: acc.password })
    return { agent }
  }
})

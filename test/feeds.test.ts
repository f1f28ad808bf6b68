import { createServiceJwt } from '@atproto/xrpc-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FEEDS } from '../src/feeds/definitions.js'
import { ingestMetrics } from '../src/ingest/metrics.js'
import { png, publish, startAppViewStack, waitFor, type Account, type AppViewStack } from './support/appview.js'
import { BACKENDS } from './support/backend.js'
import { createPost, deletePost, skeletonClient } from './support/posts.js'

const PUBLISHER = 'did:plc:acfeedpublisher0000000000'
const HOSTNAME = 'feeds.aesthetic.test'
const SERVICE_DID = `did:web:${HOSTNAME}`

/**
 * The feed generator over a real index: posts about AC from AC's PDS (trusted) and another PDS
 * (a Bluesky user's, untrusted) reach the right feeds through the real firehoses; skeletons are
 * validated against Bluesky's lexicons; deletes, takedowns, late items, squatted codes, paging
 * while posts arrive, bad parameters and service-auth JWTs. On each index engine.
 */
describe.each(BACKENDS)('feed generator (%s)', (backend) => {
  let stack: AppViewStack
  let artist: Account
  let fan: Account
  let squatter: Account
  let feeds: ReturnType<typeof skeletonClient>

  const postRow = (uri: string) => stack.index.selectFrom('post').selectAll().where('uri', '=', uri).executeTakeFirst()
  const indexedPost = (uri: string) => waitFor(`post ${uri}`, async () => !!(await postRow(uri)))
  const posts = async (rkey: string) => (await feeds.all(rkey)).map((i) => i.post)
  const itemIndexed = (uri: string) =>
    waitFor(`item ${uri}`, async () => !!(await stack.index.selectFrom('item').select('uri').where('uri', '=', uri).executeTakeFirst()))

  beforeAll(async () => {
    stack = await startAppViewStack({ secondPds: true, env: { FEEDGEN_HOSTNAME: HOSTNAME, AC_BSKY_DID: PUBLISHER }, backend })
    artist = await stack.account('artist')
    fan = await stack.account('fan', true)
    squatter = await stack.account('squatter', true)
    feeds = skeletonClient(stack.url, PUBLISHER)
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('describes itself and serves its did:web document', async () => {
    const described = await fetch(`${stack.url}/xrpc/app.bsky.feed.describeFeedGenerator`).then((r) => r.json())
    expect(described).toEqual({ did: SERVICE_DID, feeds: FEEDS.map((f) => ({ uri: `at://${PUBLISHER}/app.bsky.feed.generator/${f.rkey}` })) })
    const doc = await fetch(`${stack.url}/.well-known/did.json`).then((r) => r.json())
    expect(doc).toEqual({
      '@context': ['https://www.w3.org/ns/did/v1'],
      id: SERVICE_DID,
      service: [{ id: '#bsky_fg', type: 'BskyFeedGenerator', serviceEndpoint: `https://${HOSTNAME}` }],
    })
  })

  it('indexes the posts that point at AC, in every form a post can, into the right feeds', async () => {
    const painting = await publish(artist, { kind: 'painting', code: 'pA1', thumbnail: await png('#f0f') })
    const kidlisp = await publish(artist, { kind: 'kidlisp', code: 'kA1', source: '(wipe blue)' })
    const tape = await publish(artist, { kind: 'tape', code: 'tA1' })
    const mood = await publish(artist, { kind: 'mood', mood: 'sunny' })
    await Promise.all([painting, kidlisp, tape, mood].map((i) => itemIndexed(i.uri)))
    const moodRkey = mood.uri.split('/').pop()!
    const slug = '2025.1.1.0.0.0.pA1' // the slug `publish` gives painting pA1

    const facet = await createPost(fan, { text: 'look https://aesthetic.computer/#pA1' })
    const card = await createPost(fan, { text: 'a program', external: 'https://aesthetic.computer/%24kA1' })
    const bare = await createPost(fan, { text: 'watch aesthetic.computer/!tA1 now', facets: false })
    const moodPost = await createPost(fan, { text: `@artist: sunny\n\nhttps://aesthetic.computer/moods~artist~${moodRkey}`, facets: false })
    const bySlug = await createPost(fan, { text: `https://aesthetic.computer/painting~@artist/${slug}` })
    const news = await createPost(fan, { text: 'news https://news.aesthetic.computer/nabc' })
    const unrelated = await createPost(fan, { text: 'nothing to see https://example.com', image: await png('#0f0') })
    const notALink = await createPost(fan, { text: 'an aesthetic computer of my own' })
    const artistImage = await createPost(artist, { text: 'my cat', image: await png('#fc0') })
    const artistLink = await createPost(artist, { text: 'new one https://aesthetic.computer/#pA1' })
    const marker = await createPost(fan, { text: 'marker https://aesthetic.computer/' })
    await Promise.all([marker, artistLink, artistImage].map((p) => indexedPost(p.uri)))

    expect(await postRow(unrelated.uri)).toBeUndefined()
    expect(await postRow(notALink.uri)).toBeUndefined()
    const about = [facet, card, bare, moodPost, bySlug, news, artistLink, marker].map((p) => p.uri)
    expect(await posts('ac-all')).toEqual(expect.arrayContaining(about))
    expect(await posts('ac-all')).not.toContain(artistImage.uri) // media without an AC link is not about AC

    const paintings = await feeds.all('ac-paintings')
    expect(paintings).toEqual(
      expect.arrayContaining([
        { post: facet.uri, feedContext: painting.uri },
        { post: bySlug.uri, feedContext: painting.uri },
        { post: artistLink.uri, feedContext: painting.uri },
      ]),
    )
    expect(await feeds.all('ac-kidlisp')).toContainEqual({ post: card.uri, feedContext: kidlisp.uri })
    expect(await feeds.all('ac-tapes')).toContainEqual({ post: bare.uri, feedContext: tape.uri })
    expect(await feeds.all('ac-moods')).toContainEqual({ post: moodPost.uri, feedContext: mood.uri })
    for (const rkey of ['ac-paintings', 'ac-kidlisp', 'ac-tapes', 'ac-moods']) expect(await posts(rkey)).not.toContain(news.uri)

    const artists = await posts('ac-artists')
    expect(artists).toEqual(expect.arrayContaining([artistImage.uri, artistLink.uri]))
    expect(artists).not.toContain(facet.uri) // the fan is not on TRUSTED_PDS
  })

  it('serves newest first, by createdAt but never later than the host received the post', async () => {
    const old = await createPost(fan, { text: 'from the past https://aesthetic.computer/$kA1', createdAt: '2020-01-01T00:00:00.000Z' })
    const future = await createPost(fan, { text: 'from the future https://aesthetic.computer/$kA1', createdAt: '2099-01-01T00:00:00.000Z' })
    await indexedPost(future.uri)
    const all = await posts('ac-all')
    expect(all[0]).toBe(future.uri)
    expect(all.at(-1)).toBe(old.uri)
    expect((await postRow(future.uri))!.sortAt < '2030').toBe(true)
    const rows = await stack.index
      .selectFrom('post')
      .select(['uri', 'sortAt'])
      .where('about', '=', 1)
      .orderBy('sortAt', 'desc')
      .orderBy('uri', 'desc')
      .execute()
    expect(all).toEqual(rows.map((r) => r.uri))
  })

  it('joins a post to an item that is indexed after it', async () => {
    const early = await createPost(fan, { text: 'soon https://aesthetic.computer/#late1' })
    await indexedPost(early.uri)
    expect(await posts('ac-all')).toContain(early.uri)
    expect(await posts('ac-paintings')).not.toContain(early.uri)
    const painting = await publish(artist, { kind: 'painting', code: 'late1' })
    await itemIndexed(painting.uri)
    expect(await feeds.all('ac-paintings')).toContainEqual({ post: early.uri, feedContext: painting.uri })
  })

  it("never joins a post to a squatter's claim on a code", async () => {
    const squat = await publish(squatter, { kind: 'painting', code: 'sq1', when: '2020-01-01T00:00:00.000Z' })
    await itemIndexed(squat.uri)
    const post = await createPost(fan, { text: 'is this it? https://aesthetic.computer/#sq1' })
    await indexedPost(post.uri)
    expect(await posts('ac-all')).toContain(post.uri)
    expect(await posts('ac-paintings')).not.toContain(post.uri)
    const real = await publish(artist, { kind: 'painting', code: 'sq1' }) // later `when`, but trusted
    await itemIndexed(real.uri)
    const joined = (await feeds.all('ac-paintings')).find((i) => i.post === post.uri)
    expect(joined?.feedContext).toBe(real.uri)
  })

  it('drops the join while the winning claimant is taken down, without passing the code to the next', async () => {
    const owner = await stack.account('owner')
    const second = await stack.account('second')
    const first = await publish(owner, { kind: 'painting', code: 'win1', when: '2021-01-01T00:00:00.000Z' })
    const later = await publish(second, { kind: 'painting', code: 'win1', when: '2022-01-01T00:00:00.000Z' })
    await Promise.all([first, later].map((i) => itemIndexed(i.uri)))
    const post = await createPost(fan, { text: 'https://aesthetic.computer/#win1' })
    await indexedPost(post.uri)
    expect(await feeds.all('ac-paintings')).toContainEqual({ post: post.uri, feedContext: first.uri })
    const pds = stack.net.network.pds
    const setTakedown = (applied: boolean) =>
      pds
        .getAgent()
        .com.atproto.admin.updateSubjectStatus(
          { subject: { $type: 'com.atproto.admin.defs#repoRef', did: owner.did }, takedown: { applied, ref: applied ? 'test' : undefined } },
          { headers: pds.adminAuthHeaders(), encoding: 'application/json' },
        )
    await setTakedown(true)
    await waitFor('the takedown to unjoin the post', async () => !(await posts('ac-paintings')).includes(post.uri))
    expect(await posts('ac-all')).toContain(post.uri)
    await setTakedown(false)
    await waitFor('the restore', async () => (await feeds.all('ac-paintings')).some((i) => i.post === post.uri && i.feedContext === first.uri))
  })

  it('takes a deleted post out of every feed', async () => {
    const post = await createPost(artist, { text: 'brief https://aesthetic.computer/#pA1' })
    await indexedPost(post.uri)
    expect(await posts('ac-paintings')).toContain(post.uri)
    await deletePost(artist, post.uri)
    await waitFor('the delete', async () => !(await postRow(post.uri)))
    for (const def of FEEDS) expect(await posts(def.rkey)).not.toContain(post.uri)
  })

  it('pages a feed to its end while posts arrive, skipping and repeating nothing', async () => {
    for (let i = 0; i < 12; i++) await createPost(fan, { text: `batch ${i} https://aesthetic.computer/#pA1` })
    const last = await createPost(fan, { text: 'batch end https://aesthetic.computer/#pA1' })
    await indexedPost(last.uri)
    for (const [rkey, limit] of [
      ['ac-all', 4],
      ['ac-paintings', 3],
    ] as const) {
      const before = await posts(rkey)
      const walked: string[] = []
      let cursor: string | undefined
      let arrived = 0
      do {
        const page = await feeds.page(rkey, { limit, cursor })
        expect(page.feed.length).toBeLessThanOrEqual(limit)
        walked.push(...page.feed.map((i) => i.post))
        cursor = page.cursor
        const fresh = await createPost(fan, { text: `arrived ${rkey} ${arrived++} https://aesthetic.computer/#pA1` })
        await indexedPost(fresh.uri)
      } while (cursor)
      expect(walked).toEqual(before)
    }
  })

  it('hides the posts of a taken-down account, and removes those of a deleted one', async () => {
    const pds = stack.pds2!
    const post = await createPost(squatter, { text: 'mine https://aesthetic.computer/$kA1' })
    await indexedPost(post.uri)
    const subject = { $type: 'com.atproto.admin.defs#repoRef', did: squatter.did }
    const setTakedown = (applied: boolean) =>
      pds
        .getAgent()
        .com.atproto.admin.updateSubjectStatus(
          { subject, takedown: { applied, ref: applied ? 'test' : undefined } },
          { headers: pds.adminAuthHeaders(), encoding: 'application/json' },
        )
    await setTakedown(true)
    await waitFor('the takedown', async () => !(await posts('ac-kidlisp')).includes(post.uri))
    expect(await posts('ac-all')).not.toContain(post.uri)
    await setTakedown(false)
    await waitFor('the restore', async () => (await posts('ac-kidlisp')).includes(post.uri))
    await pds.getAgent().com.atproto.admin.deleteAccount({ did: squatter.did }, { headers: pds.adminAuthHeaders(), encoding: 'application/json' })
    await waitFor('the deletion', async () => !(await postRow(post.uri)))
    expect(await stack.index.selectFrom('post_ref').select('post').where('post', '=', post.uri).execute()).toEqual([])
  })

  it('drops a post that fails Bluesky\u2019s lexicon, naming it, and keeps going', async () => {
    const bad = await fan.agent.com.atproto.repo.createRecord({
      repo: fan.did,
      collection: 'app.bsky.feed.post',
      record: { $type: 'app.bsky.feed.post', text: 'bad https://aesthetic.computer/#pA1', createdAt: 'yesterday' },
      validate: false,
    })
    const good = await createPost(fan, { text: 'good https://aesthetic.computer/#pA1' })
    await indexedPost(good.uri)
    expect(await postRow(bad.data.uri)).toBeUndefined()
    expect(await ingestMetrics.metrics()).toMatch(/ingest_posts_total\{action="invalid"\} [1-9]/)
  })

  it('answers UnknownFeed, and InvalidRequest or InvalidCursor for bad parameters', async () => {
    const get = async (params: Record<string, string>) => {
      const res = await fetch(`${stack.url}/xrpc/app.bsky.feed.getFeedSkeleton?${new URLSearchParams(params)}`)
      return { status: res.status, body: await res.json() }
    }
    const feed = feeds.uriOf('ac-all')
    expect(await get({ feed: `at://${PUBLISHER}/app.bsky.feed.generator/nope` })).toMatchObject({ status: 400, body: { error: 'UnknownFeed' } })
    expect(await get({ feed: feed.replace(PUBLISHER, artist.did) })).toMatchObject({ status: 400, body: { error: 'UnknownFeed' } })
    expect(await get({})).toMatchObject({ status: 400, body: { error: 'InvalidRequest', message: expect.stringMatching(/feed/) } })
    expect(await get({ feed: 'not-a-uri' })).toMatchObject({ status: 400, body: { error: 'InvalidRequest' } })
    for (const limit of ['0', '101', 'x'])
      expect(await get({ feed, limit })).toMatchObject({ status: 400, body: { error: 'InvalidRequest', message: expect.stringMatching(/limit/) } })
    expect(await get({ feed, cursor: 'garbage' })).toMatchObject({ status: 400, body: { error: 'InvalidCursor' } })
    expect((await feeds.page('ac-all', { limit: 100 })).feed.length).toBeGreaterThan(1) // limit 100 is allowed
  })

  it('verifies a service-auth JWT when one is sent, and needs none', async () => {
    const keypair = await stack.net.network.pds.ctx.actorStore.keypair(artist.did)
    const jwt = (aud: string, lxm = 'app.bsky.feed.getFeedSkeleton') => createServiceJwt({ iss: artist.did, aud, lxm, keypair })
    const call = async (authorization?: string) => {
      const res = await fetch(`${stack.url}/xrpc/app.bsky.feed.getFeedSkeleton?feed=${encodeURIComponent(feeds.uriOf('ac-all'))}&limit=1`, {
        headers: authorization ? { authorization } : {},
      })
      return { status: res.status, body: await res.json() }
    }
    expect((await call()).status).toBe(200)
    expect((await call(`Bearer ${await jwt(SERVICE_DID)}`)).status).toBe(200)
    expect(await call(`Bearer ${await jwt('did:web:elsewhere.example')}`)).toMatchObject({ status: 401, body: { error: 'BadJwtAudience' } })
    expect(await call(`Bearer ${await jwt(SERVICE_DID, 'app.bsky.feed.getFeed')}`)).toMatchObject({ status: 401, body: { error: 'BadJwtLexiconMethod' } })
    const forged = (await jwt(SERVICE_DID)).replace(/\.[^.]+$/, `.${Buffer.alloc(64, 1).toString('base64url')}`)
    expect(await call(`Bearer ${forged}`)).toMatchObject({ status: 401, body: { error: 'BadJwtSignature' } })
    expect(await call('Bearer not.a.jwt')).toMatchObject({ status: 401 })
    expect(await call('Basic abc')).toMatchObject({ status: 401, body: { error: 'AuthenticationRequired' } })
  })
})

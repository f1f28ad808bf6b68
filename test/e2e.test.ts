import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NotReady, collections, mirrored, readDoc, type MirroredCollection, type SourceItem } from '../src/collections/index.js'
import { createWriterContext } from '../src/writer/context.js'
import { runBackfill } from '../src/services.js'
import type { BackfillReport } from '../src/writer/backfill.js'
import { ReadModel } from '../src/appview/read-model.js'
import { seedSamplePosts } from '../src/dev/sample-posts.js'
import type { SampleSummary } from '../src/dev/sample.js'
import { FEEDS } from '../src/feeds/definitions.js'
import { FeedReader } from '../src/feeds/reader.js'
import { skeletonPage } from '../src/feeds/skeleton.js'
import { seedStack, startIndexing, startStack, waitFor, xrpc, type Stack } from './support/stack.js'

/**
 * Issue 2's end-to-end path: AC-shaped MongoDB → writer → real PDS → firehose → SQLite → XRPC.
 */
describe('MongoDB to PDS to firehose to AppView', () => {
  let stack: Stack
  let indexing: Awaited<ReturnType<typeof startIndexing>>
  let first: BackfillReport
  let sample: SampleSummary
  const badIds = { noCode: new ObjectId(), badWhen: new ObjectId(), badSource: new ObjectId() }

  /** Handle of each AC user's PDS account, by `users._id`. */
  const handles = new Map<string, { did: string; handle: string }>()

  /** What should be in the index: every live, valid item whose owner has a PDS account. */
  async function expectedItems() {
    const out: Array<{ col: MirroredCollection; item: SourceItem<any>; did: string; handle: string }> = []
    const ctx = createWriterContext(stack.cfg)
    for (const col of mirrored) {
      for (const doc of await stack.mongo.collection(col.mongo).find().toArray()) {
        if (col.mirrors?.(doc) === false) continue // news pulled from Bluesky
        let item: SourceItem<any>
        try {
          item = readDoc(col, doc)
        } catch {
          continue
        }
        const owner = handles.get(item.owner ?? 'art-guest')
        if (!item.live || !owner) continue
        if (
          await col.toRecord(item, ctx).then(
            () => false,
            (err) => err instanceof NotReady,
          )
        )
          continue // news waiting for its toll
        // tapes without an MP4 are converted from their frame ZIP (every sample tape has a valid one): expected too
        out.push({ col, item, ...owner })
      }
    }
    return out
  }

  async function indexCount() {
    const row = await indexing.index
      .selectFrom('item')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirst()
    return Number(row?.n)
  }

  /** Every computer.aesthetic.* record on the PDS, listed repo by repo: the ground truth. */
  async function groundTruth(): Promise<Set<string>> {
    const agent = stack.net.network.pds.getAgent()
    const uris = new Set<string>()
    for (const { did } of handles.values()) {
      for (const col of collections) {
        let cursor: string | undefined
        do {
          const res = await agent.com.atproto.repo.listRecords({ repo: did, collection: col.nsid, limit: 100, cursor })
          res.data.records.forEach((r) => uris.add(r.uri))
          cursor = res.data.records.length ? res.data.cursor : undefined
        } while (cursor)
      }
    }
    return uris
  }

  async function indexedUris(): Promise<string[]> {
    return (await indexing.index.selectFrom('item').select('uri').execute()).map((r) => r.uri)
  }

  beforeAll(async () => {
    stack = await startStack()
    sample = await seedStack(stack, { scale: 'small' })
    for (const u of await stack.mongo
      .collection<{ _id: string; atproto?: { did: string; handle: string } }>('users')
      .find({ atproto: { $exists: true } })
      .toArray()) {
      handles.set(u._id, { did: u.atproto!.did, handle: u.atproto!.handle })
    }
    const someone = [...handles.keys()].find((k) => k !== 'art-guest')!
    const when = new Date('2024-03-01T12:00:00Z')
    await stack.mongo
      .collection('paintings')
      .insertOne({ _id: badIds.noCode, slug: '2024.3.1.12.00.00.000', when, user: someone, bucket: 'user-aesthetic-computer' })
    await stack.mongo.collection('moods').insertOne({ _id: badIds.badWhen, mood: 'hello', when: 'not a date', user: someone })
    await stack.mongo.collection('kidlisp').insertOne({ _id: badIds.badSource, code: 'zzq', source: 42, hash: 'x', when, user: someone })

    indexing = await startIndexing(stack)
    first = await runBackfill(stack.cfg, stack.log)
  })

  afterAll(async () => {
    await indexing?.close()
    await stack?.close()
  })

  it('seeds at least 20 users with PDS accounts plus anonymous items of every kind', async () => {
    expect(handles.size).toBeGreaterThanOrEqual(21) // 20 users + art-guest
    for (const col of mirrored.filter((c) => c.anonymous)) {
      expect(await stack.mongo.collection(col.mongo).countDocuments({ user: { $exists: false } }), col.mongo).toBeGreaterThan(0)
    }
  })

  it('reports each malformed document by id, field and reason, and mirrors everything else', async () => {
    const invalid = first.problems.filter((p) => p.action === 'invalid')
    expect(invalid).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'painting', id: badIds.noCode.toHexString(), reason: expect.stringMatching(/^code: /) }),
        expect.objectContaining({ kind: 'mood', id: badIds.badWhen.toHexString(), reason: 'when: is not a valid date' }),
        expect.objectContaining({ kind: 'kidlisp', id: badIds.badSource.toHexString(), reason: expect.stringMatching(/^source: /) }),
      ]),
    )
    expect(first.problems.filter((p) => p.action === 'failed')).toEqual([])
    const expected = await expectedItems()
    const mirrored = Object.values(first.counts).reduce((n, c) => n + c.create + c.update + c.unchanged, 0)
    expect(mirrored).toBe(expected.length)
  })

  it('indexes every live item and serves it over XRPC with the fields of the contract', async () => {
    const expected = await expectedItems()
    // Every mirrored item, and the papers AC wrote to the network itself.
    await waitFor('the index to hold every mirrored item', async () => (await indexCount()) === expected.length + sample.newsAndPapers.papers, 60_000)

    const feeds = new Map<string, Map<string, any>>()
    const authorFeed = async (handle: string) => {
      if (!feeds.has(handle)) {
        const items = new Map<string, any>()
        let cursor: string | undefined
        do {
          const { status, body } = await xrpc(indexing.url, 'computer.aesthetic.media.getAuthorFeed', { actor: handle, limit: 100, cursor })
          expect(status).toBe(200)
          for (const it of body.items) items.set(it.uri, it)
          cursor = body.cursor
        } while (cursor)
        feeds.set(handle, items)
      }
      return feeds.get(handle)!
    }

    /** What a feed should show of a long text: the whole, or its start when the view says `truncated`. */
    const listed = (shown: string, whole: string, truncated?: boolean) => (truncated ? whole.slice(0, shown.length) : whole)
    for (const { col, item, did, handle } of expected) {
      // The back-reference the writer left in MongoDB names the record.
      expect(item.backref?.uri, `${col.kind} ${item.id} back-reference`).toMatch(/^at:\/\//)
      const view = (await authorFeed(handle)).get(item.backref!.uri!)
      expect(view, `${col.kind} ${item.id} in ${handle}'s feed`).toBeDefined()
      expect(view.kind).toBe(col.kind)
      expect(view.when).toBe(item.when.toISOString())
      expect(view.author).toEqual({ did, handle })
      expect(view.uri).toMatch(new RegExp(`^at://${did}/${col.nsid}/`))
      expect(typeof view.cid).toBe('string')
      expect(Date.parse(view.indexedAt)).not.toBeNaN()
      switch (col.kind) {
        case 'painting':
          expect(view).toMatchObject({
            code: item.fields.code,
            slug: item.fields.slug,
            acUrl: `https://aesthetic.computer/#${item.fields.code}`,
            imageUrl: `https://aesthetic.computer/media/paintings/${item.fields.code}.png`,
          })
          expect(view.recordingUrl === undefined).toBe(!item.fields.slug.includes(':'))
          expect(view.thumb).toMatch(/com\.atproto\.sync\.getBlob/)
          break
        case 'mood':
          expect(view.mood).toBe(listed(view.mood, item.fields.mood, view.truncated)) // long moods are cut in feeds
          break
        case 'piece':
          expect(view.slug).toBe(item.fields.slug)
          break
        case 'kidlisp':
          expect(view).toMatchObject({
            code: item.fields.code,
            source: listed(view.source, item.fields.source, view.truncated),
            acUrl: `https://aesthetic.computer/$${item.fields.code}`,
          })
          break
        case 'tape':
          expect(view).toMatchObject({ code: item.fields.code, slug: item.fields.slug, acUrl: `https://aesthetic.computer/!${item.fields.code}` })
          expect(view.video).toMatch(/com\.atproto\.sync\.getBlob/)
          break
        case 'news':
          // AC's news script: title → headline, text → body and url → link when not empty.
          expect(view.headline).toBe(item.fields.title)
          if (item.fields.text) expect(view.body).toBe(listed(view.body, item.fields.text, view.truncated))
          else expect(view.body).toBeUndefined()
          expect(view.link).toBe(item.fields.url || undefined)
          expect(view.acUrl).toBe(`https://news.aesthetic.computer/${item.fields.code}`)
          break
      }
      if (col.codePrefix) {
        const { status, body } = await xrpc(indexing.url, 'computer.aesthetic.media.resolveCode', { code: col.codePrefix + item.fields.code })
        expect(status, `${col.codePrefix}${item.fields.code}`).toBe(200)
        const { truncated, ...whole } = view // resolveCode gives the whole source
        expect(body.item).toEqual(truncated ? { ...whole, source: item.fields.source } : view)
      }
    }
  })

  it('serves thumbnails and videos that are real PNGs and MP4s', async () => {
    const paintings = (await xrpc(indexing.url, 'computer.aesthetic.media.getFeed', { kind: 'painting', limit: 10 })).body.items
    expect(paintings.length).toBeGreaterThan(0)
    for (const p of paintings) {
      const res = await fetch(p.thumb)
      expect(res.status).toBe(200)
      const bytes = new Uint8Array(await res.arrayBuffer())
      expect([...bytes.slice(1, 4)].map((b) => String.fromCharCode(b)).join('')).toBe('PNG')
    }
    const tapes = (await xrpc(indexing.url, 'computer.aesthetic.media.getFeed', { kind: 'tape' })).body.items
    expect(tapes.length).toBeGreaterThan(0)
    const video = new Uint8Array(await (await fetch(tapes[0].video)).arrayBuffer())
    expect(Buffer.from(video.slice(4, 8)).toString()).toBe('ftyp')
  })

  it('pages through the whole feed with no item skipped or repeated', async () => {
    const seen: string[] = []
    let cursor: string | undefined
    do {
      const { body } = await xrpc(indexing.url, 'computer.aesthetic.media.getFeed', { limit: 7, cursor })
      seen.push(...body.items.map((i: any) => i.uri))
      cursor = body.cursor
    } while (cursor)
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen.sort()).toEqual((await indexedUris()).sort())
  })

  it('answers getProfile with counts per kind and the latest mood', async () => {
    const [user, { did, handle }] = [...handles.entries()].find(([k]) => k !== 'art-guest')!
    const { status, body } = await xrpc(indexing.url, 'computer.aesthetic.actor.getProfile', { actor: handle })
    expect(status).toBe(200)
    const mine = (await expectedItems()).filter((e) => e.did === did)
    expect(body.did).toBe(did)
    expect(body.handle).toBe(handle)
    for (const col of mirrored) expect(body.counts[col.kind], `${user} ${col.kind}`).toBe(mine.filter((m) => m.col === col).length)
    const moods = mine.filter((m) => m.col.kind === 'mood').sort((a, b) => b.item.when.getTime() - a.item.when.getTime())
    if (moods.length) expect(body.latestMood.mood).toBe(moods[0].item.fields.mood)
  })

  it('mirrors news as AC does: live posts to their poster, dead ones gone, tolls waited for, posts from Bluesky left alone', async () => {
    const posts = await stack.mongo.collection('news-posts').find().toArray()
    const records = new Map(
      (await indexing.index.selectFrom('item').select(['uri', 'record']).where('kind', '=', 'news').execute()).map((r) => [JSON.parse(r.record).ref, r.uri]),
    )
    const dead = posts.filter((p) => p.status === 'dead' && p.user)
    const tolled = posts.filter((p) => p.status === 'pending-toll' && p.user)
    const bluesky = posts.filter((p) => p.user === null)
    expect([dead.length, tolled.length, bluesky.length].every((n) => n > 0)).toBe(true)
    for (const p of [...dead, ...tolled, ...bluesky]) expect(records.has(p._id.toHexString()), `${p.status} ${p.code}`).toBe(false)
    // Waiting for a toll is reported (skipped, with why); posts from Bluesky are not AC's to report.
    const problems = first.problems.filter((p) => p.kind === 'news')
    expect(problems.map((p) => [p.id, p.action, p.reason]).sort()).toEqual(
      tolled.map((p) => [p._id.toHexString(), 'skipped', 'waiting for its toll (status pending-toll)']).sort(),
    )
    // The post AC's own script had written keeps its record key, now with the permalink.
    const legacy = posts.find((p) => p.atproto?.did && p.user)!
    expect(records.get(legacy._id.toHexString())).toBe(legacy.atproto.uri)
    const { body } = await xrpc(indexing.url, 'computer.aesthetic.media.getFeed', { kind: 'news', limit: 100 })
    expect(body.items.map((i: any) => i.uri).sort()).toEqual([...records.values()].sort())
  })

  it('indexes the papers AC writes itself and serves them in feeds, author feeds and profiles', async () => {
    const author = sample.newsAndPapers.paperAuthor
    const { body } = await xrpc(indexing.url, 'computer.aesthetic.media.getAuthorFeed', { actor: author, kind: 'paper' })
    expect(body.items).toHaveLength(sample.newsAndPapers.papers)
    const whole = body.items.find((i: any) => i.slug === 'aesthetic-computer-26-arxiv')
    expect(whole).toMatchObject({
      kind: 'paper',
      title: "Aesthetic Computer '26",
      pdfUrl: 'https://papers.aesthetic.computer/aesthetic-computer-26-arxiv.pdf',
      languages: ['en'],
      revisions: 1,
      author: { did: author },
    })
    const profile = await xrpc(indexing.url, 'computer.aesthetic.actor.getProfile', { actor: author })
    expect(profile.body.counts.paper).toBe(sample.newsAndPapers.papers)
    const feed = await xrpc(indexing.url, 'computer.aesthetic.media.getFeed', { kind: 'paper' })
    expect(feed.body.items).toHaveLength(sample.newsAndPapers.papers)
  })

  it('leaves nuked and deleted items out', async () => {
    const gone = [
      ...(await stack.mongo.collection('paintings').find({ nuked: true }).toArray()).map((d) => `#${d.code}`),
      ...(await stack.mongo.collection('tapes').find({ nuked: true }).toArray()).map((d) => `!${d.code}`),
      ...(await stack.mongo.collection('kidlisp').find({ nuked: true }).toArray()).map((d) => `$${d.code}`),
    ]
    expect(gone.length).toBeGreaterThan(0)
    for (const code of gone) {
      const { status, body } = await xrpc(indexing.url, 'computer.aesthetic.media.resolveCode', { code })
      expect([status, body.error], code).toEqual([400, 'NotFound'])
    }
    const deletedMoods = await stack.mongo.collection('moods').find({ deleted: true }).toArray()
    expect(deletedMoods.length).toBeGreaterThan(0)
    const records = (await indexing.index.selectFrom('item').select('record').where('kind', '=', 'mood').execute()).map((r) => JSON.parse(r.record).ref)
    for (const m of deletedMoods) expect(records).not.toContain(m._id.toHexString())
  })

  it('matches the ground truth on the PDS exactly', async () => {
    expect((await indexedUris()).sort()).toEqual([...(await groundTruth())].sort())
  })

  it('creates nothing on a second backfill', async () => {
    const second = await runBackfill(stack.cfg, stack.log)
    const changes = Object.values(second.counts).reduce((n, c) => n + c.create + c.update + c.delete, 0)
    expect(second.changes).toEqual([])
    expect(changes).toBe(0)
  })

  it('resumes from its cursor after a restart, without duplicates or gaps', async () => {
    await indexing.stopIngest()
    const cursorBefore = (await indexing.index.selectFrom('cursor').select('seq').executeTakeFirstOrThrow()).seq
    const [user] = [...handles.keys()].filter((k) => k !== 'art-guest')
    const ids = [new ObjectId(), new ObjectId()]
    await stack.mongo.collection('moods').insertMany(ids.map((_id, i) => ({ _id, mood: `written while the ingest was down ${i}`, when: new Date(), user })))
    const report = await runBackfill(stack.cfg, stack.log)
    expect(report.counts.mood.create).toBe(2)

    await indexing.restartIngest()
    const truth = await groundTruth()
    await waitFor('the restarted ingest to catch up', async () => (await indexCount()) === truth.size, 30_000)
    expect((await indexedUris()).sort()).toEqual([...truth].sort())
    const cursorAfter = (await indexing.index.selectFrom('cursor').select('seq').executeTakeFirstOrThrow()).seq
    expect(cursorAfter).toBeGreaterThan(cursorBefore)
  })

  it('fills every feed with the sample posts of `ac-appview dev`', async () => {
    const ac = await stack.net.createAccount('aesthetic')
    const made = await seedSamplePosts({
      cfg: { ...stack.cfg, AC_BSKY_DID: ac.did, AC_BSKY_PASSWORD: ac.password },
      log: stack.log,
      db: stack.mongo,
      acAccount: ac,
    })
    const postCount = async () =>
      Number(
        (
          await indexing.index
            .selectFrom('post')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst()
        )?.n,
      )
    await waitFor('the sample posts', async () => (await postCount()) >= made)
    const index = ReadModel.open(stack.cfg.index, { log: stack.log })
    const reader = new FeedReader(index)
    try {
      for (const def of FEEDS) expect((await skeletonPage(reader, def, 100)).feed.length, def.rkey).toBeGreaterThan(0)
    } finally {
      await index.close()
    }
  })
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ReadModel } from '../src/appview/read-model.js'
import { createAppView } from '../src/appview/server.js'
import { ViewCache } from '../src/appview/views.js'
import { Identity } from '../src/identity.js'
import { Indexer } from '../src/ingest/indexer.js'
import { createLogger } from '../src/log.js'
import { indexed, png, publish, startAppViewStack, waitFor, type Account, type AppViewStack } from './support/appview.js'
import { BACKENDS } from './support/backend.js'

const M = 'computer.aesthetic.media'

/**
 * Issue 12, feeds: the ingest keeps each item's list view with its row (migration 007), and an
 * uncached feed page is those views joined, with the author's handle and hidden state read from
 * the rows at request time. A handle change and a takedown made after the items were indexed
 * show in the next uncached getFeed and getAuthorFeed page; pages equal those built from the
 * records; an AppView configured otherwise builds its own views. Real PDS, PLC, ingest and index,
 * on each index engine.
 */
describe.each(BACKENDS)('stored feed views (%s)', (backend) => {
  let s: AppViewStack
  let carol: Account
  let dave: Account
  const uris: string[] = []
  const log = createLogger('silent')

  /** An AppView over the same index with neither response nor view cache: every page computed from the index. */
  const uncachedAppView = async (over: { blobCdnTemplate?: string } = {}) => {
    const app = await createAppView({
      index: s.testIndex.target,
      log,
      publicUrl: s.cfg.AC_PUBLIC_URL,
      viewUrlOrigins: s.cfg.viewUrlOrigins,
      healthMaxLagSeconds: 300,
      dashboard: false,
      viewCacheSize: 0,
      responseCacheSize: 0,
      corsOrigins: s.cfg.corsOrigins,
      rateLimitMax: 0,
      rateLimitWindowMs: 60_000,
      operator: { open: true },
      ...over,
    })
    return { app, url: await app.listen({ host: '127.0.0.1', port: 0 }) }
  }
  const get = async (url: string, nsid: string, params: Record<string, string | number>) => {
    const res = await fetch(`${url}/xrpc/${nsid}?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))}`)
    return { status: res.status, body: (await res.json()) as any }
  }
  const authorsOf = (items: any[], did: string) => items.filter((i) => i.author.did === did).map((i) => i.author)

  beforeAll(async () => {
    s = await startAppViewStack({ backend })
    ;[carol, dave] = await Promise.all([s.account('carol'), s.account('dave')])
    uris.push((await publish(carol, { kind: 'painting', code: 'Fv1', when: '2025-04-01T10:00:00.000Z', thumbnail: await png('#102030') })).uri)
    uris.push((await publish(carol, { kind: 'mood', mood: 'stored views', when: '2025-04-02T10:00:00.000Z' })).uri)
    uris.push((await publish(carol, { kind: 'kidlisp', code: 'Fv2', source: '(wipe teal)', when: '2025-04-03T10:00:00.000Z' })).uri)
    uris.push((await publish(dave, { kind: 'tape', code: 'Fv3', when: '2025-04-04T10:00:00.000Z' })).uri)
    await waitFor('every record indexed', async () => (await Promise.all(uris.map((u) => indexed(s.index, u)))).every(Boolean), 90_000)
  })

  afterAll(async () => {
    await s?.close()
  })

  it('keeps each item’s view with its row, and serves pages equal to views built from the records', async () => {
    const rows = await s.index.selectFrom('item').select(['uri', 'view', 'viewKey']).where('uri', 'in', uris).execute()
    expect(rows).toHaveLength(uris.length)
    for (const row of rows) {
      expect(row.view, row.uri).toMatch(/^\{"uri":/)
      expect(row.view, row.uri).not.toContain('"author"') // joined at read time
      expect(row.viewKey, row.uri).toMatch(/ http:\/\/(localhost|127\.0\.0\.1):\d+$/) // stamped with the author's PDS
    }
    const reader = ReadModel.open(s.testIndex.target, { log })
    try {
      const cfg = { publicUrl: s.cfg.AC_PUBLIC_URL, viewUrlOrigins: s.cfg.viewUrlOrigins }
      let recordsLoaded = 0
      const stored = new ViewCache(
        cfg,
        (u) => ((recordsLoaded += u.length), reader.records(u)),
        0,
        0,
        (u) => reader.storedViews(u),
      )
      const built = new ViewCache(cfg, (u) => reader.records(u), 0, 0)
      for (const did of [undefined, carol.did]) {
        const rows = await reader.feedPage({ did, limit: 100 })
        expect(rows.length).toBeGreaterThanOrEqual(did ? 3 : 4)
        const parse = (views: Array<Buffer | undefined>) => views.map((v) => JSON.parse(v!.toString()))
        expect(parse(await stored.views(rows, 'list'))).toEqual(parse(await built.views(rows, 'list')))
      }
      expect(recordsLoaded).toBe(0) // every view came from the rows: no record read
    } finally {
      await reader.close()
    }
    // Through the lexicon-validating client, and an AppView configured otherwise (a CDN) builds its own.
    const { items } = (await s.client.call(`${M}.getAuthorFeed`, { actor: carol.did })).data as any
    expect(items.find((i: any) => i.kind === 'painting').thumb).toContain('/xrpc/com.atproto.sync.getBlob?')
    const cdn = await uncachedAppView({ blobCdnTemplate: 'https://cdn.example/{did}/{cid}' })
    try {
      const page = await get(cdn.url, `${M}.getAuthorFeed`, { actor: carol.did })
      expect(page.body.items.find((i: any) => i.kind === 'painting').thumb).toMatch(/^https:\/\/cdn\.example\//)
    } finally {
      await cdn.app.close()
    }
  })

  it('shows a handle change made after indexing in the next uncached getFeed and getAuthorFeed page', async () => {
    const { app, url } = await uncachedAppView()
    try {
      const before = await get(url, `${M}.getFeed`, { limit: 100 })
      expect(authorsOf(before.body.items, carol.did)).toEqual(Array(3).fill({ did: carol.did, handle: carol.handle }))
      const next = `cr${Date.now() % 100000}.test`
      await carol.agent.com.atproto.identity.updateHandle({ handle: next })
      await waitFor(
        'the new handle indexed',
        async () => (await s.index.selectFrom('actor').select('handle').where('did', '=', carol.did).executeTakeFirst())?.handle === next,
        30_000,
      )
      const feed = await get(url, `${M}.getFeed`, { limit: 100 })
      expect(authorsOf(feed.body.items, carol.did)).toEqual(Array(3).fill({ did: carol.did, handle: next }))
      for (const actor of [carol.did, next]) {
        const author = await get(url, `${M}.getAuthorFeed`, { actor })
        expect(author.status, actor).toBe(200)
        expect(authorsOf(author.body.items, carol.did), actor).toEqual(Array(3).fill({ did: carol.did, handle: next }))
      }
      expect((await get(url, `${M}.getAuthorFeed`, { actor: carol.handle })).body.error).toBe('ActorNotFound')
      carol.handle = next
    } finally {
      await app.close()
    }
  })

  it('hides the items of an account taken down after indexing from the next uncached pages, and shows them when restored', async () => {
    const { app, url } = await uncachedAppView()
    const pds = s.net.network.pds
    const setTakedown = (applied: boolean) =>
      pds
        .getAgent()
        .com.atproto.admin.updateSubjectStatus(
          { subject: { $type: 'com.atproto.admin.defs#repoRef', did: dave.did }, takedown: { applied, ref: applied ? 'test' : undefined } },
          { headers: pds.adminAuthHeaders(), encoding: 'application/json' },
        )
    const hidden = async () => (await s.index.selectFrom('item').select('hidden').where('uri', '=', uris[3]).executeTakeFirst())?.hidden === 1
    try {
      expect(authorsOf((await get(url, `${M}.getFeed`, { limit: 100 })).body.items, dave.did)).toHaveLength(1)
      await setTakedown(true)
      await waitFor('the takedown indexed', hidden, 30_000)
      expect(authorsOf((await get(url, `${M}.getFeed`, { limit: 100 })).body.items, dave.did)).toEqual([])
      expect(authorsOf((await get(url, `${M}.getFeed`, { kind: 'tape', limit: 100 })).body.items, dave.did)).toEqual([])
      const author = await get(url, `${M}.getAuthorFeed`, { actor: dave.did })
      expect([author.status, author.body.error]).toEqual([400, 'ActorNotFound'])
      await setTakedown(false)
      await waitFor('the restore indexed', async () => !(await hidden()), 30_000)
      expect(authorsOf((await get(url, `${M}.getAuthorFeed`, { actor: dave.did })).body.items, dave.did)).toEqual([{ did: dave.did, handle: dave.handle }])
    } finally {
      await app.close()
    }
  })

  it('rebuilds an actor’s stored views with its PDS change, and every view under a new configuration', async () => {
    const cfg = { publicUrl: s.cfg.AC_PUBLIC_URL, viewUrlOrigins: s.cfg.viewUrlOrigins }
    const identity = new Identity({ plcUrl: s.net.plcUrl, allowPrivateNetwork: true, log })
    const indexer = new Indexer({ db: s.index, identity, trustedPds: s.cfg.trustedPds, log, views: cfg })
    const actor = await s.index.selectFrom('actor').selectAll().where('did', '=', carol.did).executeTakeFirstOrThrow()
    const painting = () => s.index.selectFrom('item').select(['view', 'viewKey']).where('uri', '=', uris[0]).executeTakeFirstOrThrow()
    const moveTo = (pds: string | null, seq: number) =>
      indexer.commit([{ type: 'actor', did: carol.did, handle: actor.handle, pds, trusted: true }], 'test:identity', seq, null)
    const { app, url } = await uncachedAppView()
    try {
      await moveTo('https://pds.example', 1)
      expect((await painting()).viewKey).toMatch(/ https:\/\/pds\.example$/)
      const thumb = async () => (await get(url, `${M}.getAuthorFeed`, { actor: carol.did })).body.items.find((i: any) => i.kind === 'painting').thumb
      expect(await thumb()).toMatch(/^https:\/\/pds\.example\/xrpc\/com\.atproto\.sync\.getBlob\?/)
      await moveTo(actor.pds, 2)
      expect(await thumb()).toMatch(new RegExp(`^${actor.pds}/xrpc/`))
      // Another configuration (a CDN) rebuilds every view at start; the first one's AppView then builds its own, the same.
      const before = (await get(url, `${M}.getFeed`, { limit: 100 })).body
      const cdn = new Indexer({
        db: s.index,
        identity,
        trustedPds: s.cfg.trustedPds,
        log,
        views: { ...cfg, blobCdnTemplate: 'https://cdn.example/{did}/{cid}' },
      })
      expect(await cdn.refreshViews()).toBeGreaterThanOrEqual(uris.length)
      expect(await cdn.refreshViews()).toBe(0)
      expect((await painting()).view).toContain('https://cdn.example/')
      expect((await get(url, `${M}.getFeed`, { limit: 100 })).body).toEqual(before)
      expect(await indexer.refreshViews()).toBeGreaterThanOrEqual(uris.length)
    } finally {
      await app.close()
    }
  })
})

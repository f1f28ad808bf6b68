import { Writable } from 'node:stream'
import { XRPCError } from '@atproto/xrpc'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAppView, type AppViewOptions } from '../src/appview/server.js'
import { createLogger } from '../src/log.js'
import {
  OPERATOR_HEADERS,
  OPERATOR_PASSWORD,
  indexed,
  png,
  publish,
  startAppViewStack,
  waitFor,
  type Account,
  type AppViewStack,
  type ItemSpec,
} from './support/appview.js'
import { BACKENDS } from './support/backend.js'
import { createPost, deletePost } from './support/posts.js'

const M = 'computer.aesthetic.media'

/**
 * Issue 6: the public contract through a real XRPC client (`@atproto/xrpc` with our lexicons,
 * which validates every answer against its output schema), code authority with a second,
 * untrusted PDS, pagination while items are indexed, and the HTTP behaviour of a public API. On
 * each index engine.
 */
describe.each(BACKENDS)('AppView (%s)', (backend) => {
  let s: AppViewStack
  let alice: Account
  let bob: Account
  let mallory: Account
  const uris: Record<string, string> = {}

  /** Publishes and remembers the uri under `name`. */
  const put = async (name: string, who: Account, spec: ItemSpec) => (uris[name] = (await publish(who, spec)).uri)
  const call = async (nsid: string, params: Record<string, unknown>) => (await s.client.call(nsid, params as never)).data as any
  const xrpcError = async (nsid: string, params: Record<string, unknown>): Promise<XRPCError> => {
    try {
      await s.client.call(nsid, params as never)
    } catch (err) {
      return err as XRPCError
    }
    throw new Error(`${nsid} ${JSON.stringify(params)} succeeded`)
  }

  /** Another AppView over the same index, configured differently (CDN, rate limit). */
  const sideAppView = async (over: Partial<AppViewOptions>) => {
    const app = await createAppView({
      index: s.testIndex.target,
      log: createLogger('silent'),
      publicUrl: 'https://aesthetic.computer',
      healthMaxLagSeconds: 300,
      dashboard: true,
      viewCacheSize: 100,
      responseCacheSize: 100,
      corsOrigins: s.cfg.corsOrigins,
      rateLimitMax: 0,
      rateLimitWindowMs: 60_000,
      operator: { password: OPERATOR_PASSWORD },
      ...over,
    })
    return { app, url: await app.listen({ host: '127.0.0.1', port: 0 }) }
  }

  beforeAll(async () => {
    s = await startAppViewStack({ secondPds: true, backend })
    ;[alice, bob, mallory] = await Promise.all([s.account('alice'), s.account('bob'), s.account('mallory', true)])
    await put('alicePainting', alice, { kind: 'painting', code: 'Pa1', when: '2025-01-01T10:00:00.000Z', thumbnail: await png('#f0828d') })
    await put('aliceMoodOld', alice, { kind: 'mood', mood: 'first mood', when: '2025-01-02T10:00:00.000Z' })
    await put('aliceMood', alice, { kind: 'mood', mood: 'latest mood 🌧', when: '2025-03-01T10:00:00.000Z' })
    await put('alicePiece', alice, { kind: 'piece', slug: 'wand', when: '2025-01-03T10:00:00.000Z' })
    await put('aliceKidlisp', alice, { kind: 'kidlisp', code: 'Ki1', source: '(wipe navy)\n(ink red)', when: '2025-01-04T10:00:00.000Z' })
    await put('aliceTape', alice, { kind: 'tape', code: 'Ta1', when: '2025-01-05T10:00:00.000Z' })
    // A later trusted claim on alice's code, and a code of bob's that an untrusted repo claims earlier.
    await put('bobSameCode', bob, { kind: 'painting', code: 'Pa1', when: '2025-02-01T10:00:00.000Z', thumbnail: await png('#3050f0') })
    await put('bobPainting', bob, { kind: 'painting', code: 'Bo2', when: '2024-06-01T10:00:00.000Z', thumbnail: await png('#30c060') })
    await put('mallorySquat', mallory, { kind: 'painting', code: 'Bo2', when: '2020-01-01T00:00:00.000Z', thumbnail: await png('#000000') })
    await waitFor('every record indexed', async () => (await Promise.all(Object.values(uris).map((u) => indexed(s.index, u)))).every(Boolean), 90_000)
  })

  afterAll(async () => {
    await s?.close()
  })

  it('resolves #, $ and ! codes to item views with the fields of the contract', async () => {
    const { item: painting } = await call(`${M}.resolveCode`, { code: '#Pa1' })
    expect(painting).toMatchObject({
      uri: uris.alicePainting,
      kind: 'painting',
      author: { did: alice.did, handle: alice.handle },
      when: '2025-01-01T10:00:00.000Z',
      code: 'Pa1',
      slug: '2025.1.1.0.0.0.Pa1',
      acUrl: 'https://aesthetic.computer/#Pa1',
      imageUrl: 'https://aesthetic.computer/media/paintings/Pa1.png',
    })
    expect(painting.thumb).toMatch(new RegExp(`^${s.net.pdsUrl}/xrpc/com\\.atproto\\.sync\\.getBlob\\?did=`))
    const thumb = await fetch(painting.thumb)
    expect(thumb.status).toBe(200)
    expect(
      Buffer.from(await thumb.arrayBuffer())
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG')

    const { item: kidlisp } = await call(`${M}.resolveCode`, { code: '$Ki1' })
    expect(kidlisp).toMatchObject({
      uri: uris.aliceKidlisp,
      kind: 'kidlisp',
      code: 'Ki1',
      source: '(wipe navy)\n(ink red)',
      acUrl: 'https://aesthetic.computer/$Ki1',
    })
    const { item: tape } = await call(`${M}.resolveCode`, { code: '!Ta1' })
    expect(tape).toMatchObject({ uri: uris.aliceTape, kind: 'tape', code: 'Ta1', slug: 'tape-Ta1', acUrl: 'https://aesthetic.computer/!Ta1' })
    expect((await fetch(tape.video)).status).toBe(200)
  })

  it('serves feeds newest first, by kind, and author feeds by handle or DID', async () => {
    const all = await call(`${M}.getFeed`, { limit: 100 })
    const whens = all.items.map((i: any) => i.when)
    expect(whens).toEqual([...whens].sort().reverse())
    expect(all.items.map((i: any) => i.uri)).toEqual(expect.arrayContaining(Object.values(uris)))
    const moods = await call(`${M}.getFeed`, { kind: 'mood' })
    expect(moods.items.map((i: any) => i.uri)).toEqual([uris.aliceMood, uris.aliceMoodOld])
    expect(moods.items[0].mood).toBe('latest mood 🌧')

    const byHandle = await call(`${M}.getAuthorFeed`, { actor: alice.handle })
    const byDid = await call(`${M}.getAuthorFeed`, { actor: alice.did })
    expect(byHandle.items).toEqual(byDid.items)
    expect(byHandle.items).toHaveLength(6)
    const pieces = await call(`${M}.getAuthorFeed`, { actor: alice.handle.toUpperCase(), kind: 'piece' })
    expect(pieces.items).toEqual([expect.objectContaining({ uri: uris.alicePiece, slug: 'wand' })])
  })

  it('answers getProfile with counts per kind and the latest mood', async () => {
    const profile = await call('computer.aesthetic.actor.getProfile', { actor: alice.handle })
    expect(profile).toMatchObject({ did: alice.did, handle: alice.handle, counts: { painting: 1, mood: 2, piece: 1, kidlisp: 1, tape: 1 } })
    expect(profile.latestMood).toMatchObject({ uri: uris.aliceMood, mood: 'latest mood 🌧' })
    const bobs = await call('computer.aesthetic.actor.getProfile', { actor: bob.did })
    expect(bobs.counts).toEqual({ painting: 2, mood: 0, piece: 0, kidlisp: 0, tape: 0, news: 0, paper: 0 })
    expect(bobs.latestMood).toBeUndefined()
  })

  it('answers bad input with 400 and the named error saying what was wrong', async () => {
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      [`${M}.resolveCode`, { code: 'abc' }, 'InvalidCode', /#, \$ or !/],
      [`${M}.resolveCode`, { code: '#' }, 'InvalidCode', /"#"/],
      [`${M}.resolveCode`, { code: '#a-b' }, 'InvalidCode', /letters or digits/],
      [`${M}.resolveCode`, { code: '#twelvechars' }, 'InvalidRequest', /code/],
      [`${M}.resolveCode`, { code: '#ab\u0000' }, 'InvalidRequest', /NUL/],
      [`${M}.resolveCode`, { code: '#pa1' }, 'NotFound', /#pa1/], // codes are case-sensitive
      [`${M}.resolveCode`, {}, 'InvalidRequest', /code/],
      [`${M}.getFeed`, { limit: 0 }, 'InvalidRequest', /limit/],
      [`${M}.getFeed`, { limit: 101 }, 'InvalidRequest', /limit/],
      [`${M}.getFeed`, { kind: 'video' }, 'InvalidRequest', /kind must be one of/],
      [`${M}.getFeed`, { cursor: 'not-a-cursor' }, 'InvalidCursor', /cursor/],
      [`${M}.getFeed`, { cursor: Buffer.from('2025-01-01T00:00:00.000Z|https://x').toString('base64url') }, 'InvalidCursor', /cursor/],
      [`${M}.getFeed`, { cursor: 'x'.repeat(600) }, 'InvalidRequest', /cursor/],
      [`${M}.getAuthorFeed`, { actor: 'nobody.test' }, 'ActorNotFound', /nobody\.test/],
      [`${M}.getAuthorFeed`, { actor: 'not a handle!' }, 'InvalidRequest', /actor must be a valid did or a handle/],
      [`${M}.getAuthorFeed`, { actor: 'did:plc:' }, 'InvalidRequest', /actor/],
      [`${M}.getAuthorFeed`, {}, 'InvalidRequest', /actor/],
      ['computer.aesthetic.actor.getProfile', { actor: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa' }, 'ActorNotFound', /did:plc:a/],
    ]
    for (const [nsid, params, error, message] of cases) {
      const err = await xrpcError(nsid, params)
      expect([err.status, err.error], `${nsid} ${JSON.stringify(params)}`).toEqual([400, error])
      expect(err.message, `${nsid} ${JSON.stringify(params)}`).toMatch(message)
    }
    // What a typed client cannot send: a non-integer limit, a parameter given twice.
    for (const [query, message] of [
      ['limit=ten', /limit must be an integer/],
      ['limit=5&limit=6', /limit was given more than once/],
    ] as const) {
      const res = await fetch(`${s.url}/xrpc/${M}.getFeed?${query}`)
      expect([res.status, await res.json()]).toEqual([400, { error: 'InvalidRequest', message: expect.stringMatching(message) }])
    }
  })

  it('lets only trusted repos own codes, earliest `when` first, and shows conflicts to operators', async () => {
    // bob's later trusted claim on #Pa1 loses to alice's; mallory's earlier untrusted claim on #Bo2 never wins.
    expect((await call(`${M}.resolveCode`, { code: '#Pa1' })).item.uri).toBe(uris.alicePainting)
    expect((await call(`${M}.resolveCode`, { code: '#Bo2' })).item.uri).toBe(uris.bobPainting)
    // The untrusted record is indexed and served in feeds, with its author's PDS as blob host.
    const squat = (await call(`${M}.getAuthorFeed`, { actor: mallory.did })).items
    expect(squat.map((i: any) => i.uri)).toEqual([uris.mallorySquat])
    expect(squat[0].thumb).toContain(s.pds2!.url)
    const trusted = await s.index.selectFrom('actor').select(['did', 'trusted']).execute()
    expect(Object.fromEntries(trusted.map((a) => [a.did, a.trusted]))).toMatchObject({ [alice.did]: 1, [bob.did]: 1, [mallory.did]: 0 })

    const status = (await (await fetch(`${s.url}/dashboard/api/status`, { headers: OPERATOR_HEADERS })).json()) as any
    const conflict = (code: string) => status.conflicts.find((c: any) => c.kind === 'painting' && c.code === code)
    expect(conflict('Pa1').claimants.map((c: any) => [c.uri, c.trusted, c.winner])).toEqual([
      [uris.alicePainting, true, true],
      [uris.bobSameCode, true, false],
    ])
    expect(conflict('Bo2').claimants.map((c: any) => [c.uri, c.trusted, c.winner])).toEqual([
      [uris.bobPainting, true, true],
      [uris.mallorySquat, false, false],
    ])
    await waitFor(
      'the metrics to count both conflicts',
      async () => /appview_code_conflicts 2\b/.test(await (await fetch(`${s.url}/metrics`, { headers: OPERATOR_HEADERS })).text()),
      10_000,
    )
  })

  it('pages through the whole feed with no item skipped or repeated while new items are indexed', async () => {
    const before = (await s.index.selectFrom('item').select('uri').execute()).map((r) => r.uri)
    const written: string[] = []
    const writer = (async () => {
      // New items both above and below any cursor position: newest, and back-dated.
      for (let i = 0; i < 30; i++) {
        const when = i % 2 ? new Date().toISOString() : new Date(Date.UTC(2024, 0, 1 + i)).toISOString()
        written.push((await publish(i % 3 ? alice : bob, { kind: 'mood', mood: `while paging ${i}`, when })).uri)
      }
    })()
    const seen: Array<{ uri: string; when: string }> = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await call(`${M}.getFeed`, { limit: 2, cursor })
      seen.push(...page.items.map((i: any) => ({ uri: i.uri, when: i.when })))
      cursor = page.cursor
      pages++
      // At least one more item written and indexed before the next page (while the writer runs).
      if (written.length < 30) {
        const target = pages
        await waitFor('a new item between pages', async () => written.length >= Math.min(target, 30) && indexed(s.index, written[written.length - 1]), 30_000)
      }
    } while (cursor && pages < 200)
    await writer
    const uriList = seen.map((x) => x.uri)
    expect(new Set(uriList).size).toBe(uriList.length)
    expect(uriList).toEqual(expect.arrayContaining(before))
    for (let i = 1; i < seen.length; i++) expect(`${seen[i - 1].when} ${seen[i - 1].uri}` > `${seen[i].when} ${seen[i].uri}`, `order at ${i}`).toBe(true)
    expect(written.length).toBeGreaterThan(5)
  })

  it('never answers from a stale response: a newly indexed item shows on the next request', async () => {
    const first = await call(`${M}.getFeed`, { kind: 'piece', limit: 5 })
    expect(await call(`${M}.getFeed`, { kind: 'piece', limit: 5 })).toEqual(first) // now from the response cache
    const { uri } = await publish(bob, { kind: 'piece', slug: 'fresh', when: new Date().toISOString() })
    await waitFor('the new piece indexed', () => indexed(s.index, uri), 30_000)
    expect((await call(`${M}.getFeed`, { kind: 'piece', limit: 5 })).items[0].uri).toBe(uri)
    expect((await call('computer.aesthetic.actor.getProfile', { actor: bob.did })).counts.piece).toBe(1)
  })

  it('builds blob URLs from BLOB_CDN_TEMPLATE when one is configured', async () => {
    const { app, url } = await sideAppView({ blobCdnTemplate: 'https://cdn.example/{did}/{cid}@png' })
    try {
      const res = await fetch(`${url}/xrpc/${M}.resolveCode?code=%23Pa1`)
      const { item } = (await res.json()) as any
      expect(item.thumb).toMatch(new RegExp(`^https://cdn\\.example/${encodeURIComponent(alice.did)}/baf[a-z0-9]+@png$`))
    } finally {
      await app.close()
    }
  })

  it("answers CORS for AC's origins only, with Cache-Control and ETags", async () => {
    const get = (origin?: string, headers: Record<string, string> = {}) =>
      fetch(`${s.url}/xrpc/${M}.getFeed?limit=3`, { headers: { ...(origin ? { origin } : {}), ...headers } })
    for (const origin of ['https://aesthetic.computer', 'https://kidlisp.aesthetic.computer', 'http://localhost:8888']) {
      expect((await get(origin)).headers.get('access-control-allow-origin'), origin).toBe(origin)
    }
    for (const origin of ['https://evil.example', 'https://aesthetic.computer.evil.example', 'http://localhost.evil.example']) {
      expect((await get(origin)).headers.get('access-control-allow-origin'), origin).toBeNull()
    }
    const preflight = await fetch(`${s.url}/xrpc/${M}.getFeed`, {
      method: 'OPTIONS',
      headers: { origin: 'https://aesthetic.computer', 'access-control-request-method': 'GET' },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-methods')).toContain('GET')

    const res = await get()
    expect(res.headers.get('cache-control')).toBe('public, max-age=10')
    const etag = res.headers.get('etag')!
    expect(etag).toMatch(/^"[\w-]+"$/)
    const again = await get(undefined, { 'if-none-match': etag })
    expect(again.status).toBe(304)
    expect(await again.text()).toBe('')
    const failed = await fetch(`${s.url}/xrpc/${M}.resolveCode?code=nope`)
    expect(failed.headers.get('cache-control')).toBe('no-store')
    expect(failed.headers.get('etag')).toBeNull()
    expect(res.headers.get('ratelimit-limit')).toBe(String(s.cfg.RATE_LIMIT_MAX))
  })

  it('tags answers without a response cache by request and index version: 304 until what the index holds changes', async () => {
    const { app, url } = await sideAppView({ responseCacheSize: 0 })
    try {
      // A post about AC makes bob an author whose post updates and deletes the ingest decodes.
      const about = await createPost(bob, { text: 'look https://aesthetic.computer/#Pa1' })
      await waitFor(
        'the post about AC indexed',
        async () => !!(await s.index.selectFrom('post').select('uri').where('uri', '=', about.uri).executeTakeFirst()),
        30_000,
      )
      await s.ingest.backfillsSettled() // the first start's backfill changes the index too
      const get = (headers: Record<string, string> = {}) => fetch(`${url}/xrpc/${M}.getFeed?kind=mood&limit=3`, { headers })
      const res = await get()
      const tag = res.headers.get('etag')!
      expect(tag).toMatch(/^W\/"v[\w-]+\.\d+\.[\w-]+"$/)
      expect((await get()).headers.get('etag')).toBe(tag)
      expect(res.headers.get('etag')).not.toBe((await fetch(`${url}/xrpc/${M}.getFeed?kind=mood&limit=4`)).headers.get('etag'))
      for (const sent of [tag, tag.slice(2), `"other", ${tag}`]) expect((await get({ 'if-none-match': sent })).status, sent).toBe(304)
      // Events the index keeps nothing of (a post about something else, then its deletion) move
      // the ingest's cursor, not the index version.
      const cursor = async () =>
        Number(
          (
            await s.index
              .selectFrom('cursor')
              .select((eb) => eb.fn.max('seq').as('seq'))
              .executeTakeFirst()
          )?.seq,
        )
      const before = await cursor()
      await deletePost(bob, (await createPost(bob, { text: 'nothing about AC' })).uri)
      await waitFor('the cursor past the deletion', async () => (await cursor()) >= before + 2, 30_000)
      expect((await get({ 'if-none-match': tag })).status).toBe(304)
      const { uri } = await publish(bob, { kind: 'mood', mood: 'a new version of the index', when: new Date().toISOString() })
      await waitFor('the new mood indexed', () => indexed(s.index, uri), 30_000)
      const changed = await get({ 'if-none-match': tag })
      expect(changed.status).toBe(200)
      expect(((await changed.json()) as any).items[0].uri).toBe(uri)
      expect(changed.headers.get('etag')).not.toBe(tag)
    } finally {
      await app.close()
    }
  })

  it('limits each client to RATE_LIMIT_MAX requests per window with 429 RateLimitExceeded', async () => {
    const { app, url } = await sideAppView({ rateLimitMax: 5, rateLimitWindowMs: 60_000 })
    try {
      const statuses: number[] = []
      let last: Response | undefined
      for (let i = 0; i < 7; i++) {
        last = await fetch(`${url}/xrpc/${M}.resolveCode?code=%23Pa1`)
        statuses.push(last.status)
        if (i < 6) await last.arrayBuffer()
      }
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429])
      expect(await last!.json()).toEqual({ error: 'RateLimitExceeded', message: expect.stringMatching(/5 requests per 60 s/) })
      expect(last!.headers.get('ratelimit-remaining')).toBe('0')
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0)
      expect(last!.headers.get('ratelimit-policy')).toBe('5;w=60')
    } finally {
      await app.close()
    }
  })

  it('logs each request at debug level as JSON, without headers', async () => {
    const lines: string[] = []
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(...String(chunk).trim().split('\n')), done()) })
    const { app, url } = await sideAppView({ log: pino({ level: 'debug' }, sink) })
    try {
      await fetch(`${url}/xrpc/${M}.resolveCode?code=%23Pa1`, { headers: { authorization: 'Bearer secret-token-123', cookie: 'session=secret-cookie' } })
      await fetch(`${url}/xrpc/${M}.resolveCode?code=nope`)
      await waitFor('two request lines', () => lines.filter((l) => l.includes('"msg":"request"')).length === 2, 5000)
    } finally {
      await app.close()
    }
    const requests = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request')
    expect(requests).toEqual([
      expect.objectContaining({ level: 20, method: 'GET', url: `/xrpc/${M}.resolveCode?code=%23Pa1`, status: 200, ms: expect.any(Number), ip: '127.0.0.1' }),
      expect.objectContaining({ method: 'GET', status: 400 }),
    ])
    expect(lines.join('\n')).not.toMatch(/secret-token|secret-cookie/)
  })

  it('keeps the dashboard and /metrics behind ADMIN_PASSWORD, from loopback too; public XRPC stays open', async () => {
    const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`ops:${password}`).toString('base64')}` })
    for (const path of ['/', '/dashboard/app.js', '/dashboard/api/status', '/metrics']) {
      const none = await fetch(`${s.url}${path}`)
      expect([path, none.status, none.headers.get('www-authenticate')]).toEqual([path, 401, expect.stringMatching(/^Basic realm=/)])
      expect(await none.json()).toMatchObject({ error: 'AuthenticationRequired' })
      expect((await fetch(`${s.url}${path}`, { headers: basic('not-the-password') })).status).toBe(401)
      expect((await fetch(`${s.url}${path}`, { headers: basic(OPERATOR_PASSWORD) })).status).toBe(200)
      expect((await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${OPERATOR_PASSWORD}` } })).status).toBe(200)
    }
    expect((await fetch(`${s.url}/xrpc/${M}.getFeed`)).status).toBe(200)
    expect((await fetch(`${s.url}/xrpc/_health`)).status).not.toBe(401)

    // Without ADMIN_PASSWORD the operator endpoints are closed, not open.
    const { app, url } = await sideAppView({ operator: {} })
    for (const path of ['/', '/dashboard/api/status', '/metrics']) {
      const res = await fetch(`${url}${path}`, { headers: basic(OPERATOR_PASSWORD) })
      expect([path, res.status, ((await res.json()) as any).error]).toEqual([path, 403, 'OperatorDisabled'])
    }
    await app.close()
  })

  it('serves Prometheus metrics', async () => {
    const text = await (await fetch(`${s.url}/metrics`, { headers: OPERATOR_HEADERS })).text()
    expect(text).toMatch(/appview_request_duration_seconds_count\{route="\/xrpc\/computer\.aesthetic\.media\.getFeed",status="200"\} \d+/)
    expect(text).toMatch(/appview_index_items\{kind="painting"\} 4/)
    expect(text).toMatch(/process_cpu_user_seconds_total/)
  })

  it('finishes requests in flight when closed, then refuses new connections', async () => {
    const { app, url } = await sideAppView({})
    let received = 0
    app.server.on('request', () => received++)
    const inflight = Array.from({ length: 20 }, () =>
      fetch(`${url}/xrpc/${M}.getFeed?limit=50`).then(async (r) => [r.status, ((await r.json()) as any).items.length]),
    )
    await waitFor('the requests to arrive', () => received === 20, 10_000)
    await app.close()
    expect(await Promise.all(inflight)).toEqual(Array(20).fill([200, expect.any(Number)]))
    await expect(fetch(`${url}/xrpc/${M}.getFeed`)).rejects.toThrow()
  })
})

import crypto from 'node:crypto'
import net from 'node:net'
import type { FastifyInstance } from 'fastify'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ReadModel } from '../src/appview/read-model.js'
import { createAppView, type AppViewOptions } from '../src/appview/server.js'
import { byKind } from '../src/collections/index.js'
import { Identity } from '../src/identity.js'
import { Indexer, recordOpFromJson, type PutOp, type QuarantineOp } from '../src/ingest/indexer.js'
import { createLogger } from '../src/log.js'
import { OPERATOR_HEADERS, OPERATOR_PASSWORD, indexed, startAppViewStack, waitFor, type Account, type AppViewStack } from './support/appview.js'
import { BACKENDS } from './support/backend.js'

const M = 'computer.aesthetic.media'
const KIDLISP = byKind.get('kidlisp')!
const MOOD = byKind.get('mood')!

/** A CIDv1 (dag-cbor, sha-256) of `text`. */
const cidOf = (text: string) => CID.create(1, 0x71, Digest.create(0x12, crypto.createHash('sha256').update(text).digest())).toString()
const didOf = (name: string) => `did:plc:${name.padEnd(24, 'z')}`

/**
 * Issue 15, attacks 1, 4, 5 and 8 against the AppView over a real index: huge but valid records,
 * forged cursors, caches, unsafe URLs in records, far-future dates, hidden actors' rows on the
 * feed path, and connections held open. On each index engine.
 */
describe.each(BACKENDS)('AppView on a hostile network (%s)', (backend) => {
  let s: AppViewStack
  let alice: Account
  let indexer: Indexer
  const log = createLogger('silent')

  const get = async (base: string, nsid: string, params: Record<string, string | number>) => {
    const res = await fetch(`${base}/xrpc/${nsid}?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))}`)
    const text = await res.text()
    return { status: res.status, bytes: Buffer.byteLength(text), body: JSON.parse(text) as any }
  }
  const call = async (nsid: string, params: Record<string, unknown>) => (await s.client.call(nsid, params as never)).data as any
  const sideAppView = async (over: Partial<AppViewOptions>) => {
    const app = await createAppView({
      index: s.testIndex.target,
      log,
      publicUrl: 'https://aesthetic.computer',
      healthMaxLagSeconds: 300,
      dashboard: false,
      viewCacheSize: 10_000,
      responseCacheSize: 10_000,
      corsOrigins: s.cfg.corsOrigins,
      rateLimitMax: 0,
      rateLimitWindowMs: 60_000,
      operator: { password: OPERATOR_PASSWORD },
      ...over,
    })
    return { app, url: await app.listen({ host: '127.0.0.1', port: 0 }) }
  }
  /** Writes `records` of `did` into the index as a verified repo snapshot would (the ingest's own path). */
  const writeRepo = async (did: string, records: Array<{ col: typeof KIDLISP; json: Record<string, unknown> }>, trusted = true) => {
    const rev = '3lzzzzzzzzzz2'
    const ops: Array<PutOp | QuarantineOp> = records.map(({ col, json }, i) =>
      recordOpFromJson(col, did, `3l${String(i).padStart(11, 'a')}`, cidOf(`${did} ${i}`), rev, json),
    )
    expect(ops.filter((o) => o.type !== 'put')).toEqual([])
    await indexer.applySnapshot(did, 'test', rev, ops, [{ type: 'actor', did, handle: null, pds: s.net.pdsUrl, trusted }])
  }
  /** Sets an account status the way an #account event from the DID's PDS does. */
  const setStatus = (did: string, status: string | null) => indexer.commit([{ type: 'status', did, status }], 'test:status', 1, null)

  beforeAll(async () => {
    s = await startAppViewStack({ backend })
    alice = await s.account('alice')
    indexer = new Indexer({ db: s.index, identity: new Identity({ plcUrl: s.net.plcUrl, allowPrivateNetwork: true, log }), trustedPds: s.cfg.trustedPds, log })
  })

  afterAll(async () => {
    await s?.close()
  })

  describe('huge but valid records', () => {
    const EMOJI = '🎨'.repeat(50_000) // 200,000 bytes: the lexicon's maxGraphemes and maxLength
    const did = didOf('huge')

    beforeAll(async () => {
      const records = Array.from({ length: 100 }, (_, i) => ({
        col: KIDLISP,
        json: { $type: KIDLISP.nsid, code: `hg${i}`, source: EMOJI, when: new Date(Date.UTC(2025, 5, 1, 0, i)).toISOString(), ref: `huge${i}` },
      }))
      await writeRepo(did, records)
    })

    it('cuts long sources in feeds (saying so), keeps them whole in resolveCode, and caps the answer', async () => {
      const page = await get(s.url, `${M}.getAuthorFeed`, { actor: did, limit: 100 })
      expect(page.status).toBe(200)
      expect(page.bytes).toBeLessThanOrEqual(300_000) // was 20 MB
      expect(page.body.items.length).toBeGreaterThan(10)
      for (const item of page.body.items) {
        expect(item.truncated).toBe(true)
        expect(Buffer.byteLength(item.source)).toBeLessThanOrEqual(2048)
        expect(EMOJI.startsWith(item.source)).toBe(true) // cut between graphemes
      }
      const validated = await call(`${M}.getAuthorFeed`, { actor: did, limit: 5 }) // the output lexicon accepts `truncated`
      expect(validated.items[0].truncated).toBe(true)
      const { item } = await call(`${M}.resolveCode`, { code: '$hg0' })
      expect(item.source).toBe(EMOJI)
      expect(item.truncated).toBeUndefined()
    })

    it('pages through every huge record with signed cursors, and refuses forged ones', async () => {
      const seen = new Set<string>()
      let cursor: string | undefined
      let pages = 0
      do {
        const page = await get(s.url, `${M}.getAuthorFeed`, { actor: did, limit: 100, ...(cursor ? { cursor } : {}) })
        for (const i of page.body.items) seen.add(i.uri)
        cursor = page.body.cursor
      } while (cursor && ++pages < 20)
      expect(seen.size).toBe(100)

      const first = (await get(s.url, `${M}.getAuthorFeed`, { actor: did, limit: 1 })).body
      const forged = Buffer.from(`2099-01-01T00:00:00.000Z|${first.items[0].uri}`).toString('base64url')
      const tampered = first.cursor.slice(0, -2) + (first.cursor.endsWith('AA') ? 'BB' : 'AA')
      for (const bad of [forged, tampered]) {
        const res = await get(s.url, `${M}.getFeed`, { limit: 100, cursor: bad })
        expect([res.status, res.body.error], bad).toEqual([400, 'InvalidCursor'])
      }
    })

    it('keeps both caches within their byte bounds, whatever is asked', async () => {
      const { app, url } = await sideAppView({ viewCacheMaxBytes: 1_000_000, responseCacheMaxBytes: 1_000_000 })
      try {
        for (let i = 0; i < 100; i++) expect((await get(url, `${M}.resolveCode`, { code: `$hg${i}` })).status).toBe(200)
        let cursor: string | undefined
        for (let limit = 1; limit <= 30; limit++) {
          const page = await get(url, `${M}.getAuthorFeed`, { actor: did, limit, ...(cursor ? { cursor } : {}) })
          cursor = page.body.cursor
        }
        const metrics = await (await fetch(`${url}/metrics`, { headers: OPERATOR_HEADERS })).text()
        for (const cache of ['view', 'response']) {
          const bytes = Number(new RegExp(`appview_cache_bytes\\{cache="${cache}"\\} (\\d+)`).exec(metrics)?.[1])
          expect(bytes, cache).toBeGreaterThan(0)
          expect(bytes, cache).toBeLessThanOrEqual(1_000_000)
        }
      } finally {
        await app.close()
      }
    })
  })

  it('serves only https URLs on AC’s origins from records; drops the rest and counts them', async () => {
    const create = async (code: string, urls: Record<string, string>) =>
      (
        await alice.agent.com.atproto.repo.createRecord({
          repo: alice.did,
          collection: 'computer.aesthetic.painting',
          record: {
            $type: 'computer.aesthetic.painting',
            slug: `s-${code}`,
            code,
            when: '2025-01-01T00:00:00.000Z',
            ref: 'r',
            imageUrl: `https://aesthetic.computer/media/paintings/${code}.png`,
            ...urls,
          },
          validate: false,
        })
      ).data.uri
    const uris = [
      await create('js1', { imageUrl: 'javascript:alert(document.domain)', recordingUrl: 'data:text/html,<script>alert(1)</script>' }),
      await create('ev1', { imageUrl: 'https://evil.example/owned.png', recordingUrl: 'http://aesthetic.computer/media/paintings/ev1.zip' }),
      await create('ok1', { recordingUrl: 'https://aesthetic.computer/media/paintings/ok1.zip' }),
    ]
    await waitFor('the paintings indexed', async () => (await Promise.all(uris.map((u) => indexed(s.index, u)))).every(Boolean), 30_000)
    for (const code of ['js1', 'ev1']) {
      const { item } = await call(`${M}.resolveCode`, { code: `#${code}` })
      expect(item.imageUrl, code).toBeUndefined()
      expect(item.recordingUrl, code).toBeUndefined()
      expect(item.acUrl, code).toBe(`https://aesthetic.computer/#${code}`) // derived from the code: kept
    }
    expect((await call(`${M}.resolveCode`, { code: '#ok1' })).item).toMatchObject({
      imageUrl: 'https://aesthetic.computer/media/paintings/ok1.png',
      recordingUrl: 'https://aesthetic.computer/media/paintings/ok1.zip',
    })
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: OPERATOR_HEADERS })).text()
    for (const field of ['imageUrl', 'recordingUrl'])
      expect(Number(new RegExp(`appview_view_urls_dropped_total\\{field="${field}"\\} (\\d+)`).exec(metrics)?.[1]), field).toBeGreaterThanOrEqual(2)
  })

  it('clamps sort dates to the first indexing time plus a small skew: a 2099 item does not stay on top', async () => {
    const mood = async (text: string, when: string) =>
      (
        await alice.agent.com.atproto.repo.createRecord({
          repo: alice.did,
          collection: MOOD.nsid,
          record: { $type: MOOD.nsid, mood: text, when, ref: 'r' },
          validate: false,
        })
      ).data.uri
    const far = await mood('first forever', '2099-01-01T00:00:00.000Z')
    await waitFor('the 2099 mood', () => indexed(s.index, far), 30_000)
    const later = await mood('indexed later', '2098-01-01T00:00:00.000Z')
    await waitFor('the 2098 mood', () => indexed(s.index, later), 30_000)
    const { items } = await call(`${M}.getAuthorFeed`, { actor: alice.did, kind: 'mood' })
    expect(items.map((i: any) => [i.uri, i.when])).toEqual([
      [later, '2098-01-01T00:00:00.000Z'],
      [far, '2099-01-01T00:00:00.000Z'],
    ])
  })

  it('hides the rows of hidden actors from feeds, through the feed index (no sort, no scan)', async () => {
    const hidden = didOf('hidden')
    const far = Date.UTC(2097, 0, 1) // newer than everything else in the index
    await writeRepo(
      hidden,
      Array.from({ length: 20_000 }, (_, i) => ({ col: MOOD, json: { $type: MOOD.nsid, mood: `spam ${i}`, when: new Date(far - i).toISOString(), ref: 'r' } })),
      false,
    )
    const reader = ReadModel.open(s.testIndex.target, { log })
    const shows = async () => (await reader.feedPage({ limit: 50 })).some((r) => r.did === hidden)
    try {
      expect(await shows()).toBe(true)
      await setStatus(hidden, 'deactivated')
      expect(await shows()).toBe(false)
      if (backend === 'sqlite') {
        // No cost: the feed's order comes from an index that starts with `hidden` (migration 005), so
        // SQLite reads only visible rows, newest first, and stops after the page (no sort, no scan).
        const plan = await sql<{ detail: string }>`explain query plan select uri from item where hidden = 0 order by "sortAt" desc, uri desc limit 51`.execute(
          s.index,
        )
        expect(plan.rows.map((r) => r.detail).join('; ')).toMatch(/^SEARCH item USING (COVERING )?INDEX \w+ \(hidden=\?\)$/)
      }
      // A record indexed while its author is hidden stays hidden; reactivation shows everything again.
      const late = recordOpFromJson(MOOD, hidden, '3lzzzzzzzzzzz', cidOf('late'), '3m2222222222a', {
        $type: MOOD.nsid,
        mood: 'while hidden',
        when: new Date(far).toISOString(),
        ref: 'r',
      })
      await indexer.commit([{ type: 'commit', did: hidden, rev: '3m2222222222a', ops: [late] }], 'test:status', 2, null)
      expect(await indexed(s.index, late.uri)).toBe(true)
      expect(await shows()).toBe(false)
      await setStatus(hidden, null)
      expect(await shows()).toBe(true)
    } finally {
      await reader.close()
    }
  })

  describe('connections', () => {
    /** Opens a socket from `from` and sends half a request; resolves once connected. */
    const halfRequest = (port: number, from = '127.0.0.1') =>
      new Promise<{ socket: net.Socket; closed: () => boolean; data: () => string }>((resolve) => {
        let closed = false
        let data = ''
        const socket = net.connect({ host: '127.0.0.1', port, localAddress: from })
        socket.on('error', () => {})
        socket.on('data', (d) => (data += d.toString()))
        socket.on('close', () => (closed = true))
        socket.on('connect', () => {
          socket.write('GET /xrpc/_health HTTP/1.1\r\nHost: x\r\n')
          resolve({ socket, closed: () => closed, data: () => data })
        })
      })
    const portOf = (app: FastifyInstance) => (app.server.address() as net.AddressInfo).port

    it('caps connections per client and in total', async () => {
      const { app, url } = await sideAppView({ maxConnections: 25, maxConnectionsPerClient: 10 })
      const port = portOf(app)
      const sockets: Array<Awaited<ReturnType<typeof halfRequest>>> = []
      try {
        for (let i = 0; i < 15; i++) sockets.push(await halfRequest(port))
        await waitFor('the connections over the per-client cap closed', () => sockets.filter((c) => c.closed()).length >= 5, 3000)
        expect(sockets.filter((c) => !c.closed())).toHaveLength(10)
        const others: typeof sockets = []
        for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) for (let i = 0; i < 8; i++) others.push(await halfRequest(port, from))
        await waitFor('the connections over the total cap closed', () => [...sockets, ...others].filter((c) => !c.closed()).length <= 25, 3000)
        expect(others.filter((c) => c.closed()).length).toBeGreaterThanOrEqual(24 + 10 - 25)
        for (const c of [...sockets, ...others]) c.socket.destroy()
        await waitFor(
          'a normal request served again',
          async () =>
            (await fetch(`${url}/xrpc/_health`).then(
              (r) => r.status,
              () => 0,
            )) !== 0,
          3000,
        )
      } finally {
        for (const c of sockets) c.socket.destroy()
        await app.close()
      }
    })

    it('closes a connection whose headers drip in slower than the headers timeout', async () => {
      const { app } = await sideAppView({ headersTimeoutMs: 1000 })
      const c = await halfRequest(portOf(app))
      const drip = setInterval(() => c.socket.write('X-Drip: 1\r\n'), 200)
      const started = Date.now()
      try {
        await waitFor('the drip-fed connection closed', () => c.closed(), 4000)
        expect(Date.now() - started).toBeLessThan(4000)
        expect(c.data()).toMatch(/^HTTP\/1\.1 408 /)
      } finally {
        clearInterval(drip)
        c.socket.destroy()
        await app.close()
      }
    })
  })
})

import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAppView } from '../src/appview/server.js'
import { writeSyntheticIndex, type SyntheticIndex } from '../src/appview/synthetic.js'
import { migrateIndex, openIndex, type IndexDb } from '../src/db/index.js'
import { createLogger } from '../src/log.js'
import { BACKENDS, testIndex, type TestIndex } from './support/backend.js'

const MALFORMED = 3000
const CONCURRENCY = 8
const GOOD_EVERY = 10

const M = 'computer.aesthetic.media'
const METHODS = [`${M}.resolveCode`, `${M}.getFeed`, `${M}.getAuthorFeed`, 'computer.aesthetic.actor.getProfile']

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Sends `request` as raw bytes on a new loopback connection and reads the whole answer (the
 * server closes: every request says `Connection: close`). Raw sockets, because fetch and
 * node:http refuse to send most of what is tested here.
 */
function raw(port: number, request: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.setTimeout(20_000, () => socket.destroy(new Error('timeout')))
    socket.on('data', (c) => chunks.push(c))
    socket.on('error', reject)
    socket.on('close', () => {
      const text = Buffer.concat(chunks)
      const split = text.indexOf('\r\n\r\n')
      if (split < 0)
        return reject(new Error(`no HTTP answer to ${JSON.stringify(request.subarray(0, 120).toString('latin1'))}: ${JSON.stringify(text.toString())}`))
      const [statusLine, ...lines] = text.subarray(0, split).toString('latin1').split('\r\n')
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.subarray(split + 4).toString() })
    })
    socket.end(request)
  })
}

/** Small seeded PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]
  return { next, pick, int: (n: number) => Math.floor(next() * n) }
}

/** Values that no parameter accepts: bad encodings, NULs, control bytes, huge or wrongly typed. */
const BAD_VALUES = [
  '%00',
  '%C3%28',
  '%FF%FE',
  '%E0%A4%A',
  '%',
  '%zz',
  '%ED%A0%80',
  'a%00b',
  '%0D%0Aset-cookie:x',
  '..%2F..%2Fetc',
  '<script>',
  '"\'',
  '%F0%9F%98',
  '+',
  '%20%20',
  '%09',
]

/** One malformed request as raw bytes, and what it is (for failure messages). */
function malformed(r: ReturnType<typeof prng>, data: SyntheticIndex): Buffer {
  const req = (target: string | Buffer, method = 'GET', extra = '', body = '') =>
    Buffer.concat([
      Buffer.from(`${method} `),
      Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'),
      Buffer.from(` HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}${body ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`),
    ])
  const nsid = r.pick(METHODS)
  const bad = () => r.pick(BAD_VALUES)
  const huge = () => 'x'.repeat(600 + r.int(5000))
  switch (r.int(14)) {
    case 0: // bad code: no prefix, bad characters, too long, odd encodings
      return req(
        `/xrpc/${M}.resolveCode?code=${r.pick(['abc', '%23', '%23a-b', '%24%24', '!' + huge(), '%23' + bad(), bad(), '%23abc' + bad(), '', '%23%E2%80%AE'])}`,
      )
    case 1: // bad limit
      return req(
        `/xrpc/${r.pick([`${M}.getFeed`, `${M}.getAuthorFeed`])}?actor=${r.pick(data.handles)}&limit=${r.pick(['0', '-1', '101', '1e3', '1.5', 'ten', '99999999999999999999', '0x10', '+5', '', bad()])}`,
      )
    case 2: // bad cursor
      return req(
        `/xrpc/${M}.getFeed?cursor=${r.pick([huge(), 'AAAA', bad(), Buffer.from(`2025|${huge()}`).toString('base64url'), Buffer.from('not a date|at://did:plc:x/y/z').toString('base64url'), '====', '%2F%2B'])}`,
      )
    case 3: // bad kind
      return req(`/xrpc/${M}.getFeed?kind=${r.pick(['video', 'PAINTING', bad(), huge(), '__proto__', 'constructor'])}`)
    case 4: // bad or missing actor
      return req(
        `/xrpc/${r.pick([`${M}.getAuthorFeed`, 'computer.aesthetic.actor.getProfile'])}${r.pick(['', '?', '?actor=', `?actor=${bad()}`, `?actor=did:${bad()}`, `?actor=${huge()}.test`, '?actor=a..b', '?actor=did:plc:', `?actor=${r.pick(data.handles)}&actor=${r.pick(data.handles)}`, '?actor=no-such-user.test'])}`,
      )
    case 5: // unknown methods and paths
      return req(
        r.pick([
          `/xrpc/${bad()}`,
          '/xrpc/',
          '/xrpc',
          `/xrpc/com.atproto.${bad()}`,
          `/xrpc/${nsid}/extra`,
          `/xrpc/${nsid.toUpperCase()}`,
          `/${bad()}`,
          '/xrpc/..%2F..%2Fmetrics',
          '/xrpc/_health/x',
          `/dashboard/${bad()}`,
          '//xrpc//' + nsid,
        ]),
      )
    case 6: // wrong HTTP methods, with and without bodies
      return req(
        `/xrpc/${nsid}?code=%23aaa&actor=${r.pick(data.handles)}`,
        r.pick(['POST', 'PUT', 'DELETE', 'PATCH']),
        r.pick(['', 'Content-Type: application/json\r\n', 'Content-Type: text/plain\r\n']),
        r.pick(['', '{"a":1}', '{', 'x'.repeat(2000)]),
      )
    case 7: // oversized body
      return req(`/xrpc/${nsid}`, 'POST', 'Content-Type: application/json\r\n', `"${'y'.repeat(20_000 + r.int(20_000))}"`)
    case 8: // long URLs: past our cap (414) and past Node's header limit (431)
      return req(`/xrpc/${nsid}?cursor=${'c'.repeat(r.pick([9000, 20_000]))}`)
    case 9: // raw non-ASCII and invalid UTF-8 bytes in the request target
      return req(Buffer.concat([Buffer.from(`/xrpc/${M}.resolveCode?code=%23`), Buffer.from([0x80 + r.int(0x7f), 0xc3, 0x28, 0xff])]))
    case 10: // control characters and spaces in the target, broken request lines
      return r.pick([
        req(`/xrpc/${nsid}?code=%23a\u0001b`),
        Buffer.from(`GET /xrpc/${nsid} HTTP/1.1\r\nHost\r\nConnection: close\r\n\r\n`),
        Buffer.from(`GET /xrpc/${nsid} HTTP/9.9\r\nConnection: close\r\n\r\n`),
        Buffer.from('\u0000\u0001\u0002\r\n\r\n'),
        Buffer.from(`GET  HTTP/1.1\r\nConnection: close\r\n\r\n`),
      ])
    case 11: // unknown HTTP method tokens
      return req(`/xrpc/${nsid}`, r.pick(['FOO', 'GETT', 'get', 'BREW']))
    case 12: // parameters given twice
      return req(`/xrpc/${M}.getFeed?limit=5&limit=6&kind=mood`)
    default: // header abuse: huge header, invalid header bytes
      return req(
        `/xrpc/${M}.getFeed?limit=${bad()}`,
        'GET',
        r.pick([`X-Big: ${'h'.repeat(20_000)}\r\n`, 'X-Bad: \u0000\r\n', 'Content-Length: -1\r\n', 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n']),
      )
  }
}

/**
 * Issue 6: thousands of malformed requests; every answer is an XRPC error (`{ error, message }`
 * JSON, 4xx), the server never crashes or answers 5xx, and good requests in between succeed.
 * Runs against an AppView over a synthetic AC-shaped index (src/appview/synthetic.ts), on each
 * index engine.
 */
describe.each(BACKENDS)('AppView under malformed requests (%s)', (backend) => {
  let work: string
  let idx: TestIndex
  let db: IndexDb
  let app: FastifyInstance
  let port: number
  let data: SyntheticIndex

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-appview-fuzz-'))
    idx = await testIndex(backend, work)
    db = openIndex(idx.target)
    await migrateIndex(db)
    data = await writeSyntheticIndex(db, { counts: { painting: 400, mood: 300, piece: 50, kidlisp: 1000, tape: 20 }, actors: 60 })
    app = await createAppView({
      index: idx.target,
      log: createLogger('silent'),
      publicUrl: 'https://aesthetic.computer',
      healthMaxLagSeconds: 300,
      dashboard: true,
      viewCacheSize: 1000,
      responseCacheSize: 1000,
      corsOrigins: ['https://aesthetic.computer'],
      rateLimitMax: 1_000_000,
      rateLimitWindowMs: 60_000,
      operator: { password: 'fuzz-operator-password' },
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    port = (app.server.address() as net.AddressInfo).port
  })

  afterAll(async () => {
    await app?.close()
    await db?.destroy()
    await idx?.stop()
    if (work) await fs.rm(work, { recursive: true, force: true })
  })

  it(`answers ${MALFORMED} malformed requests with well-formed 4xx XRPC errors and keeps serving`, async () => {
    const r = prng(6)
    const statuses = new Map<number, number>()
    let good = 0
    let next = 0
    const worker = async () => {
      while (next < MALFORMED) {
        const n = next++
        const request = malformed(r, data)
        const res = await raw(port, request)
        const what = JSON.stringify(request.subarray(0, 160).toString('latin1'))
        expect(res.status, what).toBeGreaterThanOrEqual(400)
        expect(res.status, what).toBeLessThan(500)
        expect(res.headers['content-type'], what).toMatch(/^application\/json/)
        const body = JSON.parse(res.body)
        expect(Object.keys(body).sort(), what).toEqual(['error', 'message'])
        expect(typeof body.error === 'string' && /^[A-Za-z]+$/.test(body.error), what).toBe(true)
        expect(typeof body.message === 'string' && body.message.length > 0 && body.message.length < 400, what).toBe(true)
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
        if (n % GOOD_EVERY === 0) {
          const code = r.pick(data.codes)
          const ok = await raw(
            port,
            Buffer.from(`GET /xrpc/${M}.resolveCode?code=${encodeURIComponent(code)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
          )
          expect(ok.status, code).toBe(200)
          expect(JSON.parse(ok.body).item.code).toBe(code.slice(1))
          good++
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    expect(good).toBe(MALFORMED / GOOD_EVERY)
    // Each family of answers was exercised: 400, 404, 405, 413, 414, 431.
    expect([...statuses.keys()].sort()).toEqual(expect.arrayContaining([400, 404, 405, 413, 414, 431]))
    const feed = await fetch(`http://127.0.0.1:${port}/xrpc/${M}.getFeed?limit=100`)
    expect(feed.status).toBe(200)
    expect(((await feed.json()) as { items: unknown[] }).items).toHaveLength(100)
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer fuzz-operator-password' } })).text()
    expect(metrics).not.toMatch(/status="5\d\d"/)
  })
})

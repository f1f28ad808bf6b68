import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Identity } from '../src/identity.js'
import { Provenance } from '../src/ingest/provenance.js'
import { createLogger } from '../src/log.js'
import { OPERATOR_HEADERS, indexed, publish, startAppViewStack, waitFor, type Account, type AppViewStack } from './support/appview.js'
import { BACKENDS, INDEX_PASSWORD } from './support/backend.js'
import { rogueRepo, startRogueHost, type RogueHost, type RogueRepo } from './support/rogue.js'

const M = 'computer.aesthetic.media'
const PAINTING = 'computer.aesthetic.painting'
const SECRET = 's3cret-pass'

/**
 * Issue 15, attacks 2, 3 and 6: a rogue firehose host (real WebSocket, real signed commits of a
 * did:plc whose document names AC's PDS) beside AC's PDS. Trust comes from provenance, account
 * events from the DID's own PDS (or are confirmed with it), and the host's credentials in
 * FIREHOSE_URL (and the index's password in INDEX_DATABASE_URL) are shown nowhere. On each index
 * engine.
 */
describe.each(BACKENDS)('ingest on a hostile network (%s)', (backend) => {
  let s: AppViewStack
  let rogue: RogueHost
  let squatter: RogueRepo
  let alice: Account
  let bob: Account
  const lines: string[] = []
  const uris: Record<string, string> = {}

  const get = async (nsid: string, params: Record<string, string>) => {
    const res = await fetch(`${s.url}/xrpc/${nsid}?${new URLSearchParams(params)}`)
    return { status: res.status, body: (await res.json()) as any }
  }
  /** Sends a signed commit of the squatter's through the rogue host; resolves to the record's uri. */
  const rogueCommit = async (record: Record<string, unknown>) => {
    const body = await squatter.create(PAINTING, { $type: PAINTING, ...record })
    rogue.send('#commit', body)
    return `at://${squatter.did}/${(body.ops as Array<{ path: string }>)[0].path}`
  }
  const painting = (code: string, when: string, imageUrl = `https://aesthetic.computer/media/paintings/${code}.png`) => ({
    slug: `s-${code}`,
    code,
    imageUrl,
    when,
    ref: '65a1b2c3d4e5f60718293a4b',
  })

  beforeAll(async () => {
    rogue = await startRogueHost({ userinfo: `relay-user:${SECRET}` })
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(...String(chunk).trim().split('\n')), done()) })
    s = await startAppViewStack({ firehoses: [rogue.url], log: createLogger('info', 'test', sink), backend })
    ;[alice, bob] = await Promise.all([s.account('alice'), s.account('bob')])
    squatter = await rogueRepo(s.net.plcUrl, s.net.pdsUrl, 'squatter.test')
    uris.ics = (await publish(alice, { kind: 'painting', code: 'ics', when: '2025-01-01T00:00:00.000Z' })).uri
    uris.bobMood = (await publish(bob, { kind: 'mood', mood: 'still here', when: '2025-01-02T00:00:00.000Z' })).uri
    await waitFor('the real records', async () => (await indexed(s.index, uris.ics)) && indexed(s.index, uris.bobMood), 60_000)
  })

  afterAll(async () => {
    await s?.close()
    await rogue?.close()
  })

  it('never lets a repo AC’s PDS does not host own a code, whatever its DID document says', async () => {
    const forged = await rogueCommit(painting('ics', '2020-01-01T00:00:00.000Z', 'https://evil.example/owned.png'))
    await waitFor('the forged painting indexed', () => indexed(s.index, forged), 30_000)
    const { body } = await get(`${M}.resolveCode`, { code: '#ics' })
    expect(body.item.uri).toBe(uris.ics)
    const trusted = await s.index.selectFrom('actor').select(['did', 'trusted', 'pds']).where('did', 'in', [squatter.did, alice.did]).execute()
    expect(Object.fromEntries(trusted.map((a) => [a.did, [a.trusted, a.pds]]))).toEqual({
      [squatter.did]: [0, new URL(s.net.pdsUrl).origin], // its document names AC's PDS, which does not host it
      [alice.did]: [1, new URL(s.net.pdsUrl).origin],
    })
  })

  it('believes #account and #identity events only from the DID’s own PDS, confirming the others with it', async () => {
    rogue.send('#account', { did: alice.did, active: false, status: 'takendown' })
    rogue.send('#account', { did: bob.did, active: false, status: 'deleted' })
    rogue.send('#identity', { did: alice.did, handle: 'evil.example' })
    const marker = await rogueCommit(painting('mk1', '2024-01-01T00:00:00.000Z'))
    await waitFor('the events before the marker', () => indexed(s.index, marker), 30_000)
    expect((await get('computer.aesthetic.actor.getProfile', { actor: alice.did })).body).toMatchObject({ did: alice.did, handle: alice.handle })
    expect((await get(`${M}.resolveCode`, { code: '#ics' })).body.item.uri).toBe(uris.ics)
    expect(await indexed(s.index, uris.bobMood)).toBe(true)
    const later = (await publish(bob, { kind: 'mood', mood: 'and later', when: '2025-01-03T00:00:00.000Z' })).uri
    await waitFor("bob's later mood", () => indexed(s.index, later), 30_000)
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: OPERATOR_HEADERS })).text()
    expect(metrics).toMatch(/ingest_events_refused_total\{service="ws:\/\/127\.0\.0\.1:\d+",type="#identity"\} 1/)
  })

  it("does not hide accounts that the rogue host's listRepos calls inactive", async () => {
    rogue.listed.push({
      did: alice.did,
      head: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm',
      rev: '3l3qo2vutsw2b',
      active: false,
      status: 'takendown',
    })
    rogue.send('#info', { name: 'OutdatedCursor', message: 'your cursor is too old' })
    await waitFor(
      'the backfill of the rogue host',
      async () => {
        const row = await s.index.selectFrom('backfill').selectAll().where('reason', '=', 'outdated cursor').executeTakeFirst()
        return row?.status === 'done'
      },
      30_000,
    )
    expect((await get('computer.aesthetic.actor.getProfile', { actor: alice.did })).status).toBe(200)
  })

  it('confirms an account status with the PDS that hosts it (com.atproto.sync.getRepoStatus)', async () => {
    const carol = await s.account('carol')
    const pds = s.net.network.pds
    await pds
      .getAgent()
      .com.atproto.admin.updateSubjectStatus(
        { subject: { $type: 'com.atproto.admin.defs#repoRef', did: carol.did }, takedown: { applied: true, ref: 'test' } },
        { headers: pds.adminAuthHeaders(), encoding: 'application/json' },
      )
    const identity = new Identity({ plcUrl: s.net.plcUrl, handleResolverUrl: s.net.pdsUrl, allowPrivateNetwork: true, log: createLogger('silent') })
    const provenance = new Provenance({ identity, trustedPds: s.cfg.trustedPds, trustedRelays: [], log: createLogger('silent') })
    expect(await provenance.accountStatus(carol.did)).toEqual({ status: 'takendown' })
    expect(await provenance.accountStatus(alice.did)).toEqual({ status: null })
    expect(await provenance.accountStatus(squatter.did)).toBeUndefined() // AC's PDS has no such repo: nothing confirmed
  })

  it('shows the credentials of a firehose URL and of the index nowhere: health, metrics, logs, the dashboard', async () => {
    const health = await (await fetch(`${s.url}/xrpc/_health`)).text()
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: OPERATOR_HEADERS })).text()
    const dashboard = await (await fetch(`${s.url}/dashboard/api/status`, { headers: OPERATOR_HEADERS })).text()
    const hostPort = new URL(rogue.url.replace('ws:', 'http:')).host
    expect(JSON.parse(health).ingest.map((h: any) => h.service)).toContain(`ws://${hostPort}`)
    expect(metrics).toContain(`service="ws://${hostPort}"`)
    expect(lines.some((l) => l.includes(hostPort))).toBe(true)
    for (const [where, text] of [
      ['health', health],
      ['metrics', metrics],
      ['dashboard', dashboard],
      ['logs', lines.join('\n')],
    ]) {
      expect(text, where).not.toContain(SECRET)
      expect(text, where).not.toContain('relay-user')
      expect(text, where).not.toContain(INDEX_PASSWORD)
    }
  })

  it('redacts secrets at any depth of a log line', () => {
    const out: string[] = []
    const log = createLogger('info', 'test', new Writable({ write: (chunk, _enc, done) => (out.push(String(chunk)), done()) }))
    log.info(
      {
        a: { b: { c: { password: 'hunter2', refreshJwt: 'jwt-secret', url: 'wss://user:hunter3@relay.example/x' } } },
        err: 'connect to https://u:hunter5@h.example failed',
      },
      'deep',
    )
    const text = out.join('')
    expect(text).toContain('relay.example')
    for (const secret of ['hunter2', 'jwt-secret', 'hunter3', 'hunter5']) expect(text).not.toContain(secret)
  })
})

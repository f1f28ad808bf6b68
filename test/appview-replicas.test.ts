import crypto from 'node:crypto'
import getPort from 'get-port'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OPERATOR_PASSWORD, publish, startAppViewStack, waitFor, type Account, type AppViewStack } from './support/appview.js'
import { withIndex } from './support/backend.js'
import { startCli, type Child } from './support/children.js'
import { startReplica, type Postgres } from './support/postgres.js'

const M = 'computer.aesthetic.media'
/** Probes that must be compared (no commit around them) for the test to count. */
const PROBES = 12
/** Records the ingest must have written while probes ran (on a loaded machine a PDS write can take seconds, so probing goes on until then). */
const WRITES = 7

/**
 * Stateless AppView replicas on PostgreSQL: two `ac-appview serve` processes over one index (the
 * second reading from a streaming read replica, INDEX_READ_URL), the ingest writing all along.
 * Once both report (in `/xrpc/_health`) the index version of the primary, and until the next
 * commit, both answer every query byte for byte the same (the same signed cursors, with one
 * CURSOR_SECRET), and what they answer is what the index holds: their caches never keep an answer
 * that a commit made in another process made stale. Every commit reaches both within seconds.
 */
describe('two AppView processes on one PostgreSQL index', () => {
  let s: AppViewStack
  let replica: Postgres
  const servers: Array<{ proc: Child; url: string }> = []
  let alice: Account
  let bob: Account

  const version = async () => (await withIndex(s.testIndex.target, (db) => db.selectFrom('index_version').select('version').executeTakeFirstOrThrow())).version
  /** The uris of the first page of getFeed as the index holds it (visible items, newest first). */
  const feedTruth = () =>
    withIndex(s.testIndex.target, async (db) =>
      (await db.selectFrom('item').select('uri').where('hidden', '=', 0).orderBy('sortAt', 'desc').orderBy('uri', 'desc').limit(50).execute()).map(
        (r) => r.uri,
      ),
    )

  beforeAll(async () => {
    s = await startAppViewStack({ backend: 'postgres' })
    replica = await startReplica(s.testIndex.postgres!)
    ;[alice, bob] = await Promise.all([s.account('alice'), s.account('bob')])
    await publish(alice, { kind: 'painting', code: 'Rep1', when: '2025-01-01T00:00:00.000Z' })
    const env = {
      INDEX_DATABASE_URL: s.testIndex.target,
      HOST: '127.0.0.1',
      ADMIN_PASSWORD: OPERATOR_PASSWORD,
      CURSOR_SECRET: crypto.randomBytes(32).toString('hex'),
      RATE_LIMIT_MAX: '0',
      ALLOW_PRIVATE_NETWORK: 'true',
      LOG_LEVEL: 'info',
    }
    for (const read of [undefined, replica.url]) {
      const port = await getPort({ host: '127.0.0.1' })
      const proc = startCli(['serve'], { ...env, PORT: String(port), ...(read ? { INDEX_READ_URL: read } : {}) })
      servers.push({ proc, url: `http://127.0.0.1:${port}` })
    }
    for (const { proc, url } of servers)
      await waitFor(
        'an AppView process',
        async () => (await fetch(`${url}/xrpc/_health`).catch(() => undefined)) !== undefined || proc.child.exitCode !== null,
        60_000,
      )
    for (const { proc } of servers) expect(proc.child.exitCode, proc.stderr()).toBeNull()
  })

  afterAll(async () => {
    for (const { proc } of servers) proc.child.kill('SIGTERM')
    await Promise.all(servers.map(({ proc }) => proc.exited))
    await replica?.stop()
    await s?.close()
  })

  it('answers identically from both processes, and what the index holds, while the ingest writes', async () => {
    const paths = [
      `/xrpc/${M}.getFeed?limit=50`,
      `/xrpc/${M}.getFeed?kind=mood&limit=5`,
      `/xrpc/${M}.getAuthorFeed?actor=${alice.did}&limit=10`,
      `/xrpc/${M}.resolveCode?code=${encodeURIComponent('#Rep1')}`,
      `/xrpc/computer.aesthetic.actor.getProfile?actor=${bob.did}`,
    ]
    let writing = true
    let written = 0
    const writer = (async () => {
      while (writing) {
        const who = written % 2 ? alice : bob
        await publish(
          who,
          written % 3
            ? { kind: 'mood', mood: `mood ${written}`, when: new Date().toISOString() }
            : { kind: 'painting', code: `Rp${written}`, when: new Date().toISOString() },
        )
        written++
        await new Promise((r) => setTimeout(r, 250 + Math.random() * 250))
      }
    })()
    let compared = 0
    let skipped = 0
    const deadline = Date.now() + 90_000
    try {
      while ((compared < PROBES || written < WRITES) && Date.now() < deadline) {
        const before = await version()
        const answering = async () =>
          Promise.all(servers.map(async ({ url }) => ((await (await fetch(`${url}/xrpc/_health`)).json()) as { indexVersion: number }).indexVersion))
        await waitFor(`both processes at version ${before}`, async () => (await answering()).every((v) => v >= before), 10_000, 10)
        if ((await version()) !== before || (await answering()).some((v) => v !== before)) {
          skipped++
          continue
        }
        const answers = await Promise.all(servers.map(({ url }) => Promise.all(paths.map(async (p) => (await fetch(url + p)).text()))))
        const truth = await feedTruth()
        if ((await version()) !== before) {
          skipped++
          continue
        }
        expect(answers[1]).toEqual(answers[0])
        expect(JSON.parse(answers[0][0]).items.map((i: { uri: string }) => i.uri)).toEqual(truth)
        compared++
      }
    } finally {
      writing = false
      await writer
    }
    expect(compared, `${compared} probes compared, ${skipped} skipped for a commit around them, ${written} records written`).toBeGreaterThanOrEqual(PROBES)
    expect(written).toBeGreaterThanOrEqual(WRITES)
  })
})

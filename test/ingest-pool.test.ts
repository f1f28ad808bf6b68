import { execFile } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { promisify } from 'node:util'
import { Secp256k1Keypair } from '@atproto/crypto'
import { RepoVerificationError } from '@atproto/repo'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifyPool } from '../src/ingest/verify-pool.js'
import type { CommitBody } from '../src/ingest/verify.js'
import { createLogger } from '../src/log.js'
import { OPERATOR_HEADERS, indexed, startAppViewStack, waitFor, type AppViewStack } from './support/appview.js'
import { BACKENDS } from './support/backend.js'
import { repoOf, rogueRepo, startRogueHost, type RogueHost, type RogueRepo } from './support/rogue.js'

const PAINTING = 'computer.aesthetic.painting'
const MOOD = 'computer.aesthetic.mood'
const ROOT = path.resolve(import.meta.dirname, '..')

const mood = (i: number) => ({ $type: MOOD, mood: `mood ${i}`, when: new Date(Date.UTC(2025, 0, 1, 0, i)).toISOString(), ref: `ref${i}` })
const painting = (code: string) => ({
  $type: PAINTING,
  slug: `s-${code}`,
  code,
  imageUrl: `https://aesthetic.computer/media/paintings/${code}.png`,
  when: '2025-02-01T00:00:00.000Z',
  ref: '65a1b2c3d4e5f60718293a4b',
})
const uriOf = (body: Record<string, unknown>) => `at://${body.repo}/${(body.ops as Array<{ path: string }>)[0].path}`

/**
 * The verify pool (INGEST_VERIFY_THREADS, src/ingest/verify-pool.ts) with real signed commits:
 * the same ops as on the main thread, forgeries and malformed CARs refused with the errors the
 * main thread threw, the caller's bytes left intact, and no worker keeping a process alive.
 */
describe('verify pool', () => {
  let repo: RogueRepo
  let key: string

  beforeAll(async () => {
    // a repo of our own on no PLC: only its commits are needed here, checked against its key
    const signer = await Secp256k1Keypair.create()
    repo = await repoOf('did:plc:verifypool0000000000000', signer)
    key = signer.did()
  })

  it('verifies commits on worker threads exactly as on the main thread, concurrently', async () => {
    const bodies: CommitBody[] = []
    for (let i = 0; i < 40; i++) bodies.push((await repo.create(MOOD, mood(i))) as unknown as CommitBody)
    const pool = createVerifyPool(2)
    const inline = createVerifyPool(0)
    try {
      await Promise.all([pool.ready(), inline.ready()]) // every worker loaded
      const [pooled, onMain] = await Promise.all([
        Promise.all(bodies.map((b) => pool.decode(b, key, [MOOD]))),
        Promise.all(bodies.map((b) => inline.decode(b, key, [MOOD]))),
      ])
      expect(pooled).toEqual(onMain)
      expect(pooled.map((ops) => ops[0].record?.mood)).toEqual(bodies.map((_, i) => `mood ${i}`))
      expect(pooled[0][0]).toMatchObject({ action: 'create', collection: MOOD, cid: String(bodies[0].ops[0].cid) })
      // an NSID not asked for is skipped unread
      expect(await pool.decode(bodies[0], key, [PAINTING])).toEqual([])
      // the caller's bytes are copied, not transferred away: a retry (fresh key) can read them
      expect(bodies.every((b) => b.blocks.byteLength > 0)).toBe(true)
    } finally {
      await pool.close()
    }
  })

  it('refuses a forged signature and a malformed CAR with the main thread’s errors', async () => {
    const forged = (await repo.forge(MOOD, mood(99))) as unknown as CommitBody
    const valid = (await repo.create(MOOD, mood(100))) as unknown as CommitBody
    const malformed = { ...valid, blocks: valid.blocks.slice(0, valid.blocks.byteLength - 7) }
    const garbage = { ...valid, blocks: new Uint8Array([0xa1, 0x61, 0x78, 0x01, 0xff]) }
    for (const threads of [2, 0]) {
      const pool = createVerifyPool(threads)
      try {
        const forgery = pool.decode(forged, key, [MOOD])
        await expect(forgery).rejects.toBeInstanceOf(RepoVerificationError)
        await expect(forgery).rejects.toThrow(/Invalid signature/)
        await expect(pool.decode(valid, (await Secp256k1Keypair.create()).did(), [MOOD])).rejects.toThrow(/Invalid signature/)
        await expect(pool.decode({ ...valid, repo: 'did:plc:someoneelse0000000000000' }, key, [MOOD])).rejects.toThrow(/Invalid repo did/)
        for (const bad of [malformed, garbage]) {
          const err = await pool.decode(bad, key, [MOOD]).then(
            () => null,
            (e: Error) => e,
          )
          expect(err, `threads ${threads}`).toBeInstanceOf(Error)
          expect(err).not.toBeInstanceOf(RepoVerificationError)
        }
        await expect(pool.decode({ ...valid, blocks: 'not bytes' as never }, key, [MOOD])).rejects.toThrow()
        // and the pool goes on: the valid commit still verifies after the bad ones
        expect((await pool.decode(valid, key, [MOOD]))[0].record?.mood).toBe('mood 100')
      } finally {
        await pool.close()
      }
    }
  })

  it('never keeps a process alive: a pool left open does not stop its process from exiting', async () => {
    const script = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'ac-verify-pool-')), 'open-pool.mts')
    await fs.writeFile(
      script,
      `import { createVerifyPool } from ${JSON.stringify(path.join(ROOT, 'src/ingest/verify-pool.ts'))}
const pool = createVerifyPool(2)
await pool.decode({ repo: 'did:plc:x', rev: '', blocks: new Uint8Array([1, 2, 3]), ops: [] }, null, []).catch((err) => console.log('refused:', err.message))
console.log('done, pool left open')
`,
    )
    const started = Date.now()
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, timeout: 60_000 })
    expect(stdout).toContain('refused:')
    expect(stdout).toContain('done, pool left open')
    expect(Date.now() - started).toBeLessThan(60_000)
    await fs.rm(path.dirname(script), { recursive: true, force: true })
  })
})

/**
 * The ingest with the pool on (INGEST_VERIFY_THREADS=2), fed by a firehose host of our own (real
 * WebSocket, real signed commits): a burst of valid commits with a forged one and a malformed one
 * among them is verified concurrently and applied in seq order (a record created then deleted
 * in the burst stays deleted, the repo's rev is the last commit's), the bad ones are refused with
 * a log line naming why, and the stream goes on. On each index engine.
 */
describe.each(BACKENDS)('ingest with the verify pool (%s)', (backend) => {
  let s: AppViewStack
  let rogue: RogueHost
  let author: RogueRepo
  const lines: string[] = []

  beforeAll(async () => {
    rogue = await startRogueHost()
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(...String(chunk).trim().split('\n')), done()) })
    s = await startAppViewStack({ firehoses: [rogue.url], log: createLogger('info', 'test', sink), backend, env: { INGEST_VERIFY_THREADS: '2' } })
    author = await rogueRepo(s.net.plcUrl, s.net.pdsUrl, 'pool-author.test')
  })

  afterAll(async () => {
    await s?.close()
    await rogue?.close()
  })

  it('applies valid commits in order and refuses a forged signature and a malformed CAR without stopping', async () => {
    await waitFor('the ingest started with 2 verify threads', () => lines.some((l) => l.includes('"verifyThreads":2')), 30_000) // on PostgreSQL, once it leads
    // at the live tail the host sends only what comes after the connection
    await waitFor(
      'the ingest connected to our host',
      () => lines.some((l) => l.includes('"msg":"firehose connected"') && l.includes(`"service":"${rogue.url}"`)),
      30_000,
    )
    const sent: Array<{ uri: string; kept: boolean }> = []
    const send = (body: Record<string, unknown>, kept: boolean) => {
      rogue.send('#commit', body)
      sent.push({ uri: uriOf(body), kept })
      return body
    }
    // first the author's identity (DID document, key, trust), so that the burst depends on no network lookup but the forgery's key refresh
    const first = await author.create(MOOD, mood(0))
    rogue.send('#commit', first)
    await waitFor('the first commit indexed', () => indexed(s.index, uriOf(first)), 60_000)
    const gone = await author.create(MOOD, mood(0))
    send(gone, false) // deleted below, in the same burst
    for (let i = 1; i <= 12; i++) send(await author.create(MOOD, mood(i)), true)
    const forged = send(await author.forge(PAINTING, painting('frg')), false)
    for (let i = 13; i <= 20; i++) send(await author.create(MOOD, mood(i)), true)
    const valid = await author.create(MOOD, mood(21))
    const malformed = send({ ...valid, blocks: (valid.blocks as Uint8Array).slice(0, 40) }, false)
    send(await author.remove(MOOD, uriOf(gone).split('/').pop()!), false)
    for (let i = 22; i <= 30; i++) send(await author.create(MOOD, mood(i)), true)
    const last = send(await author.create(PAINTING, painting('pl1')), true)

    await waitFor('the last commit indexed', () => indexed(s.index, uriOf(last)), 60_000)
    for (const { uri, kept } of sent) expect(await indexed(s.index, uri), uri).toBe(kept)
    const repoRow = await s.index.selectFrom('repo').select('rev').where('did', '=', author.did).executeTakeFirstOrThrow()
    expect(repoRow.rev).toBe(last.rev)
    expect(await indexed(s.index, uriOf(forged))).toBe(false)
    expect(await indexed(s.index, uriOf(malformed))).toBe(false)
    const refusals = lines.filter((l) => l.includes('event failed verification or parsing')).map((l) => JSON.parse(l))
    expect(refusals.some((r) => r.did === author.did && /Invalid signature/.test(r.err))).toBe(true)
    expect(refusals.some((r) => r.did === author.did && !/Invalid signature/.test(r.err))).toBe(true)
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: OPERATOR_HEADERS })).text()
    expect(metrics).toMatch(/ingest_verify_failures_total\{service="ws:\/\/127\.0\.0\.1:\d+"\} [2-9]/)

    // the stream goes on after them
    const after = await author.create(MOOD, mood(31))
    rogue.send('#commit', after)
    await waitFor('a commit after the refused ones', () => indexed(s.index, uriOf(after)), 30_000)
  })
})

import net from 'node:net'
import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mirrored } from '../src/collections/index.js'
import { ACTIONS } from '../src/writer/report.js'
import { addGuest, addPainting, addUser, listRepo, pixelArt, type AcUser } from './support/ac.js'
import { spawnCli } from './support/children.js'
import { startStack, writerEnv, type Stack } from './support/stack.js'

const PAINTING = 'computer.aesthetic.painting'

/** `ac-appview writer …` as an operator meets it: what it prints, what it exits with. */
describe('writer CLI', () => {
  let stack: Stack
  let ana: AcUser
  let empty: AcUser
  const accountless = Array.from({ length: 7 }, (_, i) => `auth0|nopds${i}`)

  const cli = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawnCli(args, {
        env: writerEnv(stack, env),
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      child.stdout!.on('data', (d) => (stdout += d))
      child.stderr!.on('data', (d) => (stderr += d))
      child.on('exit', (code) => resolve({ code, stdout, stderr }))
    })
  const lines = (text: string) => text.trimEnd().split('\n')

  beforeAll(async () => {
    stack = await startStack()
    ana = await addUser(stack, 'ana')
    empty = await addUser(stack, 'idle')
    await addGuest(stack)
    for (const [i, sub] of accountless.entries()) {
      await stack.mongo.collection('moods').insertOne({ _id: new ObjectId(), mood: `mood ${i}`, when: new Date(Date.UTC(2022, 0, 1 + i)), user: sub })
    }
    for (let i = 0; i < 4; i++)
      await stack.mongo.collection('moods').insertOne({ _id: new ObjectId(), mood: `ana ${i}`, when: new Date(Date.UTC(2023, 0, 1 + i)), user: ana.sub })
    await addPainting(stack, ana, { code: 'Ok1', png: await pixelArt(64) })
    await addPainting(stack, ana, { code: 'Ms1' }) // its PNG is missing from storage
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('groups problems by reason with a few examples, and prints the summary table last', async () => {
    const run = await cli(['writer', 'backfill', '--dry-run'])
    expect(run.code, run.stderr).toBe(0)
    const out = lines(run.stdout)
    const header = out.findIndex((l) => /^kind\s+create\s+update\s+delete\s+unchanged\s+skipped\s+invalid\s+failed$/.test(l))
    expect(out.slice(header + 1).map((l) => l.split(/\s+/)[0])).toEqual(mirrored.map((c) => c.kind)) // the table is the last thing printed
    const group = out.findIndex((l) => /^\s+7\s+skipped: owner has no PDS account$/.test(l))
    expect(group, run.stdout).toBeGreaterThan(-1)
    expect(out.slice(group + 1, group + 5).filter((l) => /^\s+mood [0-9a-f]{24} \(auth0\|nopds\d\)$/.test(l))).toHaveLength(3)
    expect(out[group + 4]).toMatch(/… and 4 more \(--verbose or --json for all\)/)

    const verbose = await cli(['writer', 'backfill', '--dry-run', '--verbose'])
    expect(lines(verbose.stdout).filter((l) => /auth0\|nopds/.test(l))).toHaveLength(7)
  })

  it('--limit and --user bound the report too', async () => {
    const limited = JSON.parse((await cli(['writer', 'backfill', '--dry-run', '--limit', '2', '--json'])).stdout)
    const total = (r: any) => Object.values(r.counts).reduce((n: number, c: any) => n + ACTIONS.reduce((m, a) => m + c[a], 0), 0)
    expect(total(limited)).toBe(2) // the two oldest items, both moods of people without an account
    expect(limited.problems).toHaveLength(2)

    const one = JSON.parse((await cli(['writer', 'backfill', '--dry-run', '--user', '@ana', '--json'])).stdout)
    expect(one.problems.filter((p: any) => p.action === 'skipped')).toEqual([])
    expect(total(one)).toBe(6)
    expect(one.repos).toBe(1)
  })

  it('writes a painting whose PNG is missing without its thumbnail: a warning, exit 0, and a clean audit after', async () => {
    const run = await cli(['writer', 'backfill'])
    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect(run.stdout).toMatch(/^\s+1\s+warning: thumbnail left out: GET <url>: HTTP 404$/m)
    expect(run.stdout).toMatch(/^painting\s+2\s+0\s+0\s+0\s+0\s+0\s+0$/m)
    const paintings = [...(await listRepo(stack, ana.did, PAINTING)).values()]
    expect(paintings.map((p) => p.value.code).sort()).toEqual(['Ms1', 'Ok1'])
    const audit = await cli(['writer', 'audit'])
    expect(audit.code, audit.stdout).toBe(0)
    expect(lines(audit.stdout).at(-1)).toMatch(/repos audited: clean$/)
    const again = await cli(['writer', 'backfill'])
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/^painting\s+0\s+0\s+0\s+2\s+0\s+0\s+0$/m)
  })

  it('finds an orphan in a repo whose owner has no items, and --fix removes it', async () => {
    const agent = stack.net.network.pds.getAgent()
    await agent.login({ identifier: empty.did, password: empty.password })
    await agent.com.atproto.repo.createRecord({
      repo: empty.did,
      collection: PAINTING,
      record: {
        $type: PAINTING,
        slug: 'x',
        code: 'Orp',
        imageUrl: 'https://aesthetic.computer/media/paintings/Orp.png',
        when: new Date().toISOString(),
        ref: new ObjectId().toHexString(),
      },
      validate: false,
    })
    const audit = await cli(['writer', 'audit', '--user', 'idle'])
    expect(audit.code).toBe(1)
    expect(audit.stdout).toMatch(/^\s+1\s+orphan: no live item has ref <id>$/m)
    expect(lines(audit.stdout).at(-1)).toBe('1 repos audited: 1 orphan')
    const fixed = await cli(['writer', 'audit', '--user', 'idle', '--fix'])
    expect(lines(fixed.stdout).at(-1)).toBe('1 repos audited: clean')
    expect((await listRepo(stack, empty.did, PAINTING)).size).toBe(0)
  })

  it('names a bad argument in one line and exits 2', async () => {
    for (const [args, pattern] of [
      [
        ['writer', 'backfill', '--only', 'paintings'],
        /--only.*unknown kind paintings; expected a comma-separated list of painting, mood, piece, kidlisp, tape/,
      ],
      [['writer', 'audit', '--user', '@nobody'], /--user: no AC user is @nobody/],
      [['writer', 'backfill', '--limit', 'many'], /--limit.*not a positive integer: many/],
      [['writer', 'backfil'], /unknown command 'backfil'/],
    ] as const) {
      const run = await cli([...args])
      expect(run.code, args.join(' ')).toBe(2)
      expect(lines(run.stderr.trim()), args.join(' ')).toEqual([expect.stringMatching(pattern)])
      expect(run.stdout).toBe('')
    }
  })

  it('gives one line per repo, not per item, when the PDS is down', async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo
        server.close(() => resolve(port))
      })
    })
    const run = await cli(['writer', 'backfill', '--verbose'], { PDS_URL: `http://127.0.0.1:${closed}`, WRITER_RETRIES: '1' })
    expect(run.code).toBe(1)
    const failures = lines(run.stdout).filter((l) => /^\s+repo did:/.test(l))
    expect(failures).toHaveLength(3) // ana, empty, the guest: one line each
    expect(run.stdout).toMatch(/^\s+3\s+failed: listing repo <did> failed: fetch failed$/m)
    expect(run.stdout).not.toMatch(/mood [0-9a-f]{24} \(ana/)
  })
})

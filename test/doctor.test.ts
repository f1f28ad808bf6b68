import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Config } from '../src/config.js'
import { migrateIndex, migrateIndexTo, openIndex } from '../src/db/index.js'
import { startMongo } from '../src/dev/mongo-server.js'
import { blocking, runDoctor, type Check } from '../src/doctor.js'
import { createLogger } from '../src/log.js'
import { addGuest, addPainting, addUser, pixelArt, type AcUser } from './support/ac.js'
import { spawnCli } from './support/children.js'
import { startStack, type Stack } from './support/stack.js'

const log = createLogger('silent')

/** A loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** `ac-appview doctor` against a working deployment, then against one broken in each way it checks. */
describe('doctor', () => {
  let stack: Stack
  let ana: AcUser
  let cfg: Config

  const doctor = async (over: Partial<Config> = {}) => runDoctor({ ...cfg, ...over }, log)
  const check = (checks: Check[], name: string | RegExp) => checks.find((c) => (typeof name === 'string' ? c.name === name : name.test(c.name)))!

  beforeAll(async () => {
    stack = await startStack({ rateLimits: true })
    ana = await addUser(stack, 'ana')
    await addGuest(stack)
    await addPainting(stack, ana, { code: 'Dc1', png: await pixelArt(32) })
    await stack.mongo.collection('moods').insertOne({ mood: 'hi', when: new Date(), user: ana.sub })
    for (const empty of ['pieces', 'kidlisp', 'tapes', 'news-posts']) await stack.mongo.createCollection(empty)
    const file = path.join(stack.work, 'index.sqlite')
    cfg = { ...stack.cfg, INDEX_DB_PATH: file, indexDbPath: file, index: file }
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('passes every check on a working deployment, with no blocking problem', async () => {
    const checks = await doctor()
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ['MongoDB', 'ok'],
      ['change streams', 'ok'],
      ["AC's collections", 'ok'],
      ['users and PDS accounts', 'ok'],
      ['guest account', 'ok'],
      ['PDS', 'ok'],
      ['PDS logins', 'ok'],
      ['PDS rate limits', 'ok'],
      ['media', 'ok'],
      ['PLC and handles', 'ok'],
      [expect.stringMatching(/^firehose /), 'ok'],
      ['DATA_DIR', 'ok'],
      ['index migrations', 'ok'],
    ])
    expect(blocking(checks)).toBe(false)
  })

  it('MongoDB unreachable: fails, names the fix, skips what needs it', async () => {
    const checks = await doctor({ MONGODB_URI: `mongodb://127.0.0.1:${await closedPort()}/?directConnection=true&serverSelectionTimeoutMS=500` })
    expect(check(checks, 'MongoDB')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/MONGODB_URI/) })
    expect(check(checks, 'change streams').status).toBe('skip')
    expect(check(checks, 'PDS logins').status).toBe('skip')
    expect(blocking(checks)).toBe(true)
  })

  it('no change streams (a standalone mongod): fails, asks for a replica set', async () => {
    const standalone = await startMongo({ standalone: true, dbName: 'aesthetic' })
    try {
      const checks = await doctor({ MONGODB_URI: standalone.uri, MONGODB_DB: 'aesthetic' })
      expect(check(checks, 'MongoDB').status).toBe('ok')
      expect(check(checks, 'change streams')).toMatchObject({
        status: 'fail',
        detail: expect.stringMatching(/only supported on replica sets/),
        fix: expect.stringMatching(/replica set/),
      })
    } finally {
      await standalone.stop()
    }
  })

  it('the wrong database: no AC collections, no users', async () => {
    const checks = await doctor({ MONGODB_DB: 'not_aesthetic' })
    expect(check(checks, "AC's collections")).toMatchObject({ status: 'fail', fix: expect.stringMatching(/MONGODB_DB/) })
    expect(check(checks, 'users and PDS accounts')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/MONGODB_DB/) })
  })

  it('no guest account while anonymous items exist', async () => {
    const checks = await doctor({ AC_GUEST_USER: 'no-such-guest' })
    await stack.mongo.collection('paintings').insertOne({ code: 'An1', slug: 'anon1', when: new Date(), bucket: 'art-aesthetic-computer' })
    const again = await doctor({ AC_GUEST_USER: 'no-such-guest' })
    await stack.mongo.collection('paintings').deleteOne({ code: 'An1' })
    expect(check(checks, 'guest account').status).toBe('warn') // no anonymous item yet
    expect(check(again, 'guest account')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/AC_GUEST_USER/) })
  })

  it('the PDS unreachable', async () => {
    const checks = await doctor({ PDS_URL: `http://127.0.0.1:${await closedPort()}` })
    expect(check(checks, 'PDS')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/PDS_URL/) })
    expect(check(checks, 'PDS logins').status).toBe('skip')
  })

  it('a stored password that no longer logs in', async () => {
    await stack.mongo.collection('users').updateOne({ _id: ana.sub as never }, { $set: { 'atproto.password': 'wrong-password' } })
    try {
      const checks = await doctor()
      expect(check(checks, 'PDS logins')).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining(ana.pdsHandle),
        fix: expect.stringMatching(/users\.atproto\.password/),
      })
      expect(JSON.stringify(checks)).not.toContain('wrong-password')
    } finally {
      await stack.mongo.collection('users').updateOne({ _id: ana.sub as never }, { $set: { 'atproto.password': ana.password } })
    }
  })

  it('a PDS without rate limits: a warning, not a blocker', async () => {
    const open = await startStack()
    try {
      const user = await addUser(open, 'rl')
      const checks = await runDoctor({ ...open.cfg, AC_GUEST_USER: user.sub }, log)
      expect(check(checks, 'PDS rate limits')).toMatchObject({ status: 'warn', fix: expect.stringMatching(/PDS_RATE_LIMITS_ENABLED/) })
    } finally {
      await open.close()
    }
  })

  it('media storage that does not answer', async () => {
    const checks = await doctor({ AC_STORAGE_URL: `http://127.0.0.1:${await closedPort()}/{bucket}` })
    expect(check(checks, 'media')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/AC_STORAGE_URL/) })
  })

  it('the wrong PLC directory, and handles that do not resolve', async () => {
    const plc = await doctor({ PLC_URL: `http://127.0.0.1:${await closedPort()}` })
    expect(check(plc, 'PLC and handles')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/PLC_URL/) })
    const handles = await doctor({ HANDLE_RESOLVER_URL: `http://127.0.0.1:${await closedPort()}` })
    expect(check(handles, 'PLC and handles')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/handle resolution/) })
  })

  it('a firehose host that is down, and a stored cursor the host never reached', async () => {
    const down = `ws://127.0.0.1:${await closedPort()}`
    const checks = await doctor({ firehoseUrls: [down] })
    expect(check(checks, /^firehose /)).toMatchObject({ status: 'fail', fix: expect.stringMatching(/FIREHOSE_URL/) })

    const index = openIndex(cfg.indexDbPath)
    await migrateIndex(index)
    const service = stack.cfg.PDS_URL!.replace('http://', 'ws://')
    await index.insertInto('cursor').values({ service, seq: 10_000_000, eventTime: null, updatedAt: new Date().toISOString() }).execute()
    await index.destroy()
    try {
      const future = await doctor()
      expect(check(future, /^firehose /)).toMatchObject({ status: 'fail', detail: expect.stringMatching(/cursor 10000000 is ahead of the host/) })
    } finally {
      await fs.rm(cfg.indexDbPath, { force: true })
    }
  })

  it('a DATA_DIR that cannot be written', async () => {
    const file = path.join(stack.work, 'a-file')
    await fs.writeFile(file, 'not a directory')
    const checks = await doctor({ DATA_DIR: path.join(file, 'data') })
    expect(check(checks, 'DATA_DIR')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/DATA_DIR/) })
  })

  it('an index an upgrade left behind: pending migrations', async () => {
    const file = path.join(stack.work, 'old-index.sqlite')
    const old = openIndex(file)
    await migrateIndexTo(old, '001_init')
    await old.destroy()
    const checks = await doctor({ indexDbPath: file, index: file })
    expect(check(checks, 'index migrations')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/002_ingest/),
      fix: expect.stringMatching(/ac-appview migrate/),
    })
  })

  it('prints a table and exits 1 on a blocking problem (CLI)', async () => {
    const run = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawnCli(['doctor'], {
        env: {
          ...process.env,
          MONGODB_URI: stack.cfg.MONGODB_URI,
          MONGODB_DB: stack.cfg.MONGODB_DB,
          PDS_URL: 'http://127.0.0.1:9',
          PLC_URL: stack.cfg.PLC_URL,
          DATA_DIR: path.join(stack.work, 'cli'),
          ALLOW_PRIVATE_NETWORK: 'true',
          HANDLE_RESOLVER_URL: stack.cfg.PDS_URL!,
          AC_STORAGE_URL: stack.cfg.AC_STORAGE_URL,
          FIREHOSE_URL: stack.cfg.PDS_URL!,
        },
        stdio: ['ignore', 'pipe', 'ignore'],
      })
      let stdout = ''
      child.stdout!.on('data', (d) => (stdout += d))
      child.on('exit', (code) => resolve({ code, stdout }))
    })
    expect(run.code).toBe(1)
    expect(run.stdout).toMatch(/^check\s+status\s+found\s+what to do$/m)
    expect(run.stdout).toMatch(/^PDS\s+FAIL\s+.*check PDS_URL/m)
    expect(run.stdout).toMatch(/blocking problem\(s\)/)
  })
})

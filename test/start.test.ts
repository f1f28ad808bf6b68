import type { ChildProcess } from 'node:child_process'
import getPort from 'get-port'
import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnCli } from './support/children.js'
import { startCutProxy } from './support/cut-proxy.js'
import { seedStack, startStack, waitFor, type Stack } from './support/stack.js'

const M = 'computer.aesthetic.media'
const ADMIN = 'start-test-admin-password'
const OPERATOR = { authorization: `Bearer ${ADMIN}` }

/**
 * `ac-appview start` end to end, as AC runs it: the three parts in one process; a part that
 * cannot start (MongoDB unreachable) is reported and restarted while the others serve; nothing
 * public names a person without a PDS account; SIGTERM stops everything cleanly.
 */
describe('ac-appview start', () => {
  let stack: Stack
  let proxy: Awaited<ReturnType<typeof startCutProxy>>
  let child: ChildProcess
  let url: string
  let logs = ''
  /** Auth0 subjects of people without a PDS account, and the MongoDB ids of their items. */
  const secrets: string[] = []

  const get = async (p: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${url}${p}`, { headers })
    return { status: res.status, text: await res.text() }
  }
  const health = async () => JSON.parse((await get('/xrpc/_health')).text)
  const part = async (name: string) => (await health()).parts?.find((p: { name: string }) => p.name === name)

  beforeAll(async () => {
    stack = await startStack()
    await seedStack(stack, { scale: 'small', seed: 5 })
    for (let i = 0; i < 5; i++) {
      const sub = `auth0|private${i}${new ObjectId().toHexString().slice(0, 8)}`
      const _id = new ObjectId()
      await stack.mongo.collection('users').insertOne({ _id: sub as never, code: `acpriv${i}`, when: new Date() })
      await stack.mongo.collection('moods').insertOne({ _id, mood: `a private mood ${i}`, when: new Date(), user: sub })
      secrets.push(sub, _id.toHexString())
    }
    for await (const u of stack.mongo.collection('users').find({ atproto: { $exists: false } })) secrets.push(String(u._id))

    const target = new URL(stack.cfg.MONGODB_URI!.replace('mongodb://', 'http://'))
    proxy = await startCutProxy({ host: target.hostname, port: Number(target.port) })
    proxy.cut() // MongoDB unreachable at start: the writer cannot start
    const port = await getPort()
    url = `http://127.0.0.1:${port}`
    child = spawnCli(['start'], {
      env: {
        ...process.env,
        ...stack.env,
        MONGODB_URI: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true&serverSelectionTimeoutMS=1000`,
        PORT: String(port),
        ADMIN_PASSWORD: ADMIN,
        WRITER_RECONCILE_SECONDS: '5',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout!.on('data', (d) => (logs += d))
    child.stderr!.on('data', (d) => (logs += d))
    await waitFor('the AppView', async () => (await fetch(`${url}/xrpc/_health`).catch(() => undefined)) !== undefined, 60_000)
  }, 300_000)

  afterAll(async () => {
    if (child?.exitCode === null) child.kill('SIGKILL')
    await proxy?.close()
    await stack?.close()
  })

  it('reports a part that cannot start, keeps the others serving, and restarts it once it can', async () => {
    await waitFor('the writer to be reported failed', async () => (await part('writer'))?.state === 'failed', 30_000)
    // the ingest starts once its verify workers have loaded (a few seconds on a busy machine)
    await waitFor('the ingest to run', async () => (await part('ingest'))?.state === 'running', 60_000)
    const report = await health()
    expect(report.status).toBe('failed')
    expect(report.parts.map((p: { name: string; state: string }) => [p.name, p.state])).toEqual([
      ['writer', 'failed'],
      ['ingest', 'running'],
      ['appview', 'running'],
    ])
    expect((await get('/metrics', OPERATOR)).text).toMatch(/^ac_part_up\{part="writer"\} 0$/m)
    expect(logs).toMatch(/"part":"writer".*"msg":"part could not start; retrying"/)
    expect((await get(`/xrpc/${M}.getFeed`)).status).toBe(200)

    proxy.restore()
    await waitFor('the writer to run again', async () => (await part('writer'))?.state === 'running', 60_000)
    expect((await part('writer')).restarts).toBeGreaterThanOrEqual(1)
    expect((await get('/metrics', OPERATOR)).text).toMatch(/^ac_part_up\{part="writer"\} 1$/m)

    // The whole service works: a new mood goes MongoDB → PDS → firehose → index → XRPC.
    const owner = (await stack.mongo.collection('users').findOne({ 'atproto.did': { $exists: true }, _id: { $ne: 'art-guest' as never } }))!
    const _id = new ObjectId()
    await stack.mongo.collection('moods').insertOne({ _id, mood: 'through every part', when: new Date(), user: owner._id })
    await waitFor(
      'the mood through the AppView',
      async () => (await get(`/xrpc/${M}.getAuthorFeed?actor=${owner.atproto.did}&kind=mood`)).text.includes('through every part'),
      60_000,
    )
    await waitFor('health ok', async () => (await health()).status === 'ok', 30_000)
  })

  it('names no person without a PDS account in any public answer, nor in its logs; operators see them', async () => {
    const operatorSees = async () => {
      const text = (await get('/dashboard/api/status', OPERATOR)).text
      return secrets.some((s) => text.includes(s))
    }
    await waitFor('the operator view to show their items as skipped', operatorSees, 30_000)
    const pages: Array<{ path: string; text: string }> = []
    const visit = async (p: string) => pages.push({ path: p, ...(await get(p)) })
    for (const p of ['/', '/dashboard/api/status', '/dashboard/app.js', '/metrics', '/xrpc/_health', `/xrpc/${M}.getFeed?limit=100`]) await visit(p)
    let cursor: string | undefined
    do {
      const page = JSON.parse((await get(`/xrpc/${M}.getFeed?limit=100${cursor ? `&cursor=${cursor}` : ''}`)).text)
      pages.push({ path: 'getFeed page', text: JSON.stringify(page) })
      for (const item of page.items) {
        for (const p of [`/xrpc/${M}.getAuthorFeed?actor=${item.author.did}`, `/xrpc/computer.aesthetic.actor.getProfile?actor=${item.author.did}`])
          if (!pages.some((x) => x.path === p)) await visit(p)
        if (item.code)
          await visit(`/xrpc/${M}.resolveCode?code=${encodeURIComponent({ painting: '#', kidlisp: '$', tape: '!' }[item.kind as string] + item.code)}`)
      }
      cursor = page.cursor
    } while (cursor)
    expect(pages.length).toBeGreaterThan(30)
    for (const { path: p, text } of pages) for (const secret of secrets) expect(text.includes(secret), `${p} names ${secret}`).toBe(false)
    for (const secret of secrets) expect(logs.includes(secret), `the log names ${secret}`).toBe(false)
  })

  it('stops every part cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(logs).toMatch(/"msg":"shutting down"/)
    expect(logs).toMatch(/"msg":"writer live stopped"/)
    await expect(fetch(`${url}/xrpc/_health`)).rejects.toThrow()
  })
})

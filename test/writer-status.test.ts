import getPort from 'get-port'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCli, type Child } from './support/children.js'
import { startStack, waitFor, type Stack } from './support/stack.js'

const ADMIN = 'writer-status-password'
const OPERATOR = { authorization: `Bearer ${ADMIN}` }

/**
 * The writer's status reaches the dashboard of an AppView in another process, over HTTP only:
 * `writer live` serves its ledger's latest run at `/status` on METRICS_PORT (behind
 * ADMIN_PASSWORD), and `serve` with WRITER_STATUS_URL shows it; when the writer's process stops
 * answering, the dashboard says the writer is not reachable, and why. Real processes, real HTTP.
 */
describe('writer status across processes', () => {
  let stack: Stack
  let writer: Child
  let serve: Child
  let statusUrl: string
  let appview: string

  const dashboard = async () =>
    (await (await fetch(`${appview}/dashboard/api/status`, { headers: OPERATOR })).json()) as {
      writer: { mode: string; status: string; startedAt: string } | null
      writerUnreachable?: string
    }

  beforeAll(async () => {
    stack = await startStack()
    const [metricsPort, port] = [await getPort({ host: '127.0.0.1' }), await getPort({ host: '127.0.0.1' })]
    statusUrl = `http://127.0.0.1:${metricsPort}/status`
    appview = `http://127.0.0.1:${port}`
    writer = startCli(['writer', 'live'], { ...stack.env, METRICS_PORT: String(metricsPort), ADMIN_PASSWORD: ADMIN })
    serve = startCli(['serve'], { ...stack.env, PORT: String(port), ADMIN_PASSWORD: ADMIN, WRITER_STATUS_URL: statusUrl })
    await waitFor(
      'the writer status endpoint',
      async () =>
        (await fetch(statusUrl, { headers: OPERATOR }).then(
          (r) => r.ok,
          () => false,
        )) || writer.child.exitCode !== null,
      60_000,
    )
    await waitFor(
      'the AppView',
      async () =>
        (await fetch(`${appview}/xrpc/_health`).then(
          () => true,
          () => false,
        )) || serve.child.exitCode !== null,
      60_000,
    )
    expect(writer.child.exitCode, writer.stderr()).toBeNull()
    expect(serve.child.exitCode, serve.stderr()).toBeNull()
  })

  afterAll(async () => {
    for (const c of [writer, serve]) c?.child.kill('SIGTERM')
    await Promise.all([writer?.exited, serve?.exited])
    await stack?.close()
  })

  it("serves the ledger's latest run at /status behind ADMIN_PASSWORD, and the AppView's dashboard shows it", async () => {
    expect((await fetch(statusUrl)).status).toBe(401)
    expect((await fetch(statusUrl, { headers: { authorization: 'Bearer not-the-password' } })).status).toBe(401)
    const own = (await (await fetch(statusUrl, { headers: OPERATOR })).json()) as { mode: string; status: string; startedAt: string }
    expect(own).toMatchObject({ mode: 'live', status: 'running', startedAt: expect.any(String) })
    const shown = await dashboard()
    expect(shown.writerUnreachable).toBeUndefined()
    expect(shown.writer).toMatchObject({ mode: own.mode, status: own.status, startedAt: own.startedAt })
  })

  it('says the writer is not reachable, and why, once its process is gone', async () => {
    writer.child.kill('SIGTERM')
    expect(await writer.exited).toBe(0)
    await waitFor('the dashboard to notice', async () => (await dashboard()).writerUnreachable !== undefined, 10_000)
    const shown = await dashboard()
    expect(shown.writer).toBeNull()
    expect(shown.writerUnreachable).toMatch(/did not answer at WRITER_STATUS_URL/)
  })
})

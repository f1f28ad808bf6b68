import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNetwork, type LocalNetwork } from '../src/dev/network.js'
import { createLogger } from '../src/log.js'
import { RepoClient } from '../src/writer/repo.js'

/** What an HTTP server saw: method, path and whether the request carried credentials. */
interface Seen {
  method: string
  path: string
  authorization: boolean
  body: string
}

/** A real HTTP server on loopback: records every request, then answers with `respond`. */
async function recorder(respond: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void) {
  const seen: Seen[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      seen.push({ method: req.method!, path: req.url!, authorization: !!req.headers.authorization, body: body.toString() })
      respond(req, body, res)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  }
}

/**
 * Issue 15, attacks 6 and 7: the writer's credentials go to PDS_URL and nowhere else. No
 * redirect is followed on a request carrying them, calls after login stay on PDS_URL whatever
 * the DID document names, and a failed login does not tell PDS_URL to whoever reads the ledger.
 */
describe('writer on a hostile network', () => {
  let net: LocalNetwork
  let account: { did: string; handle: string; password: string }
  const log = createLogger('silent')

  beforeAll(async () => {
    net = await startNetwork()
    account = await net.createAccount('careful')
  })

  afterAll(async () => {
    await net?.close()
  })

  it('follows no redirect with the password: a 307 from PDS_URL fails the login', async () => {
    const elsewhere = await recorder((_req, _body, res) =>
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"AuthenticationRequired","message":"no"}'),
    )
    const redirecting = await recorder((req, _body, res) => res.writeHead(307, { location: `${elsewhere.url}${req.url}` }).end())
    try {
      const err = await RepoClient.login(redirecting.url, account, log, { retries: 0 }).then(
        () => undefined,
        (e: Error) => e,
      )
      expect(err?.message).toMatch(/redirect/i)
      expect(redirecting.seen.map((r) => r.path)).toEqual(['/xrpc/com.atproto.server.createSession'])
      expect(elsewhere.seen).toEqual([]) // the password never left for the other origin
    } finally {
      await elsewhere.close()
      await redirecting.close()
    }
  })

  it('keeps every call on PDS_URL after login, not on the PDS its DID document names', async () => {
    // PDS_URL is a proxy in front of the PDS that hands out, with the session, a DID document
    // naming another PDS (as a PDS with PDS_ENABLE_DID_DOC_WITH_SESSION does after a migration).
    const elsewhere = await recorder((_req, _body, res) => res.writeHead(500).end())
    const didDoc = (await (await fetch(`${net.plcUrl}/${account.did}`)).json()) as { service: Array<{ serviceEndpoint: string }> }
    didDoc.service[0].serviceEndpoint = elsewhere.url
    const target = new URL(net.pdsUrl)
    const proxy = await recorder((req, body, res) => {
      const upstream = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        async (up) => {
          const chunks: Buffer[] = []
          for await (const c of up) chunks.push(c as Buffer)
          let answer = Buffer.concat(chunks)
          if (req.url!.startsWith('/xrpc/com.atproto.server.createSession') && up.statusCode === 200)
            answer = Buffer.from(JSON.stringify({ ...JSON.parse(answer.toString()), didDoc }))
          res.writeHead(up.statusCode!, { 'content-type': up.headers['content-type'] ?? 'application/json', 'content-length': answer.length }).end(answer)
        },
      )
      upstream.end(body)
    })
    try {
      const client = await RepoClient.login(proxy.url, account, log, { retries: 0 })
      await client.collections()
      await client.listRecords('computer.aesthetic.mood')
      expect(elsewhere.seen).toEqual([]) // no bearer token for the PDS the document names
      expect(proxy.seen.map((r) => [r.path.split('?')[0], r.authorization])).toEqual([
        ['/xrpc/com.atproto.server.createSession', false],
        ['/xrpc/com.atproto.repo.describeRepo', true],
        ['/xrpc/com.atproto.repo.listRecords', true],
      ])
    } finally {
      await proxy.close()
      await elsewhere.close()
    }
  })

  it('reports a failed login without PDS_URL (the message reaches the ledger and the dashboard)', async () => {
    const err = await RepoClient.login(net.pdsUrl, { ...account, password: 'wrong' }, log, { retries: 0 }).then(
      () => undefined,
      (e: Error) => e,
    )
    expect(err?.message).toContain(account.did)
    expect(err?.message).toMatch(/Invalid identifier or password/)
    expect(err?.message).not.toContain(new URL(net.pdsUrl).host)
  })
})

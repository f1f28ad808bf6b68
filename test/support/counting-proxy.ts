import { createHash } from 'node:crypto'
import http from 'node:http'

/**
 * An HTTP proxy on loopback in front of a PDS that counts blob uploads by the SHA-256 of their
 * bytes (`POST /xrpc/com.atproto.repo.uploadBlob`), so a test can tell whether a writer ever sent
 * the same blob twice, whichever processes it ran in, and logins (`createSession`) by identifier.
 */
export async function startCountingProxy(target: string) {
  const uploads = new Map<string, number>()
  const logins = new Map<string, number>()
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = []
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer)
    } catch {
      return void res.destroy() // the client was killed mid-request
    }
    const body = Buffer.concat(chunks)
    if (req.method === 'POST' && req.url?.startsWith('/xrpc/com.atproto.repo.uploadBlob')) {
      const hash = createHash('sha256').update(body).digest('hex')
      uploads.set(hash, (uploads.get(hash) ?? 0) + 1)
    }
    if (req.method === 'POST' && req.url?.startsWith('/xrpc/com.atproto.server.createSession')) {
      const { identifier } = JSON.parse(body.toString()) as { identifier: string }
      logins.set(identifier, (logins.get(identifier) ?? 0) + 1)
    }
    const hopByHop = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'])
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !hopByHop.has(k))) as Record<string, string>
    try {
      const upstream = await fetch(new URL(req.url!, target), { method: req.method, headers, body: body.length ? body : undefined, redirect: 'manual' })
      res.writeHead(
        upstream.status,
        Object.fromEntries([...upstream.headers].filter(([k]) => k !== 'content-encoding' && k !== 'content-length' && k !== 'transfer-encoding')),
      )
      res.end(Buffer.from(await upstream.arrayBuffer()))
    } catch {
      res.destroy()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as import('node:net').AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    /** Uploads per distinct blob (by content hash). */
    uploads,
    /** Logins per identifier (the writer logs in with the DID). */
    logins,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      }),
  }
}

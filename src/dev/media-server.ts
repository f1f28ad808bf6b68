/**
 * A tiny read-only HTTP file server standing in for AC's S3-compatible object storage
 * (dev and tests only).
 *
 * Layout: every first-level subfolder of `dir` is a bucket, so the object
 * `<dir>/<bucket>/<key>` is served at `<url>/<bucket>/<key>`. Object keys may contain
 * characters such as `|` (AC keys start with the Auth0 subject `auth0|…`); clients should
 * percent-encode them (`encodeURIComponent` per path segment), the server decodes them.
 */
import path from 'node:path'
import { stat } from 'node:fs/promises'
import Fastify from 'fastify'
import fastifyStatic from '@fastify/static'

/** A running media server; see {@link startMediaServer}. */
export interface MediaServer {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  url: string
  /** Public base URL of a bucket (no trailing slash): `url + '/' + bucket`. */
  storageUrl(bucket: string): string
  /** Stops listening and releases the port. */
  close(): Promise<void>
}

/**
 * Content types for the object kinds AC stores. `send` (inside @fastify/static) already
 * knows most of these; they are set explicitly so the answer never depends on its mime table.
 */
const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.zip': 'application/zip',
  '.mp4': 'video/mp4',
  '.json': 'application/json; charset=utf-8',
  '.wav': 'audio/wav',
}

/**
 * Serves `opts.dir` read-only over HTTP (GET and HEAD, with Range support) with Fastify and
 * @fastify/static.
 *
 * - Content types: `.png` image/png, `.jpg` image/jpeg, `.zip` application/zip, `.mp4`
 *   video/mp4, `.json` application/json; others as guessed by `send`.
 * - Missing objects, directories (no listings, no index files), dotfiles and any other
 *   method answer 404.
 * - `access-control-allow-origin: *`, as for AC's public buckets.
 *
 * @param opts.dir  root folder; must exist (throws `Error` otherwise)
 * @param opts.port TCP port (default: a free port chosen by the OS)
 * @param opts.host interface to bind (default `127.0.0.1`, loopback only)
 * @param opts.latencyMs delay added to every answer (default none)
 * @returns the base URL, a helper for bucket URLs and `close()`
 */
export async function startMediaServer(opts: {
  dir: string
  port?: number
  host?: string
  /** Milliseconds added to every answer, as remote object storage takes (tests at AC's scale). */
  latencyMs?: number
}): Promise<MediaServer> {
  const root = path.resolve(opts.dir)
  const st = await stat(root).catch(() => null)
  if (!st?.isDirectory()) throw new Error(`media server: ${root} is not a directory`)
  const host = opts.host ?? '127.0.0.1'

  const app = Fastify({ logger: false })
  const latency = opts.latencyMs ?? 0
  if (latency > 0) app.addHook('onRequest', () => new Promise<void>((resolve) => setTimeout(resolve, latency)))
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    index: false,
    list: false,
    redirect: false,
    dotfiles: 'deny',
    etag: true,
    lastModified: true,
    cacheControl: false,
    setHeaders(reply, filePath) {
      const type = CONTENT_TYPES[path.extname(filePath).toLowerCase()]
      if (type) void reply.header('content-type', type)
      void reply.header('access-control-allow-origin', '*')
    },
  })
  // Directory requests, dotfiles and unknown routes all become a plain 404.
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send({ error: 'NotFound', message: 'no such object' })
  })
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? 404 : 500
    void reply.code(status).send({ error: status === 404 ? 'NotFound' : 'InternalError', message: err.message })
  })

  await app.listen({ port: opts.port ?? 0, host })
  const addr = app.server.address()
  if (!addr || typeof addr === 'string') throw new Error('media server: no TCP address')
  const urlHost = host.includes(':') ? `[${host}]` : host
  const url = `http://${urlHost}:${addr.port}`
  return {
    url,
    storageUrl: (bucket: string) => `${url}/${bucket}`,
    close: async () => {
      await app.close()
    },
  }
}

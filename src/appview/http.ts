import http from 'node:http'
import type { Socket } from 'node:net'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from '../log.js'
import { corsOrigin, originMatcher } from '../origins.js'
import { XrpcError, echo, errorBody, toXrpcError } from './xrpc.js'

export { corsOrigin, originMatcher }

/** Longest request target (path and query) served; longer gets 414. Node itself caps all headers at 16 KiB (431). */
export const MAX_URL_LENGTH = 8192
/** Largest request body accepted (the API has only GET queries; bodies are never read). */
export const BODY_LIMIT = 16 * 1024

export interface HttpOptions {
  log: Logger
  /** CORS: exact origins, `scheme://*.host` for any subdomain, `scheme://host:*` for any port, or `*`. */
  corsOrigins: string[]
  /** Requests per client IP per window; 0 turns rate limiting off. */
  rateLimitMax: number
  rateLimitWindowMs: number
}

/**
 * Fastify's `clientErrorHandler`: answers requests Node's HTTP parser rejects (malformed request
 * line, invalid bytes, headers or URL over 16 KiB) with an XRPC error body instead of Fastify's
 * default, then closes the connection.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
  const message = status === 431 ? 'Request headers or URL too large' : status === 408 ? 'Request timed out' : 'Malformed HTTP request'
  const body = errorBody(new XrpcError(status, 'InvalidRequest', message))
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
  socket.destroy()
}

/** Fastify's `frameworkErrors`: a URL the router cannot decode (e.g. `/xrpc/%E0%A4%A`) is 400 InvalidRequest. */
export function frameworkErrors(err: Error, _req: FastifyRequest, reply: FastifyReply): void {
  void sendXrpcError(reply, new XrpcError(400, 'InvalidRequest', `Malformed URL: ${err.message}`))
}

/** Sends `err` as `{ error, message }` with its status; never cached. */
export function sendXrpcError(reply: FastifyReply, err: XrpcError): FastifyReply {
  return reply.code(err.status).header('cache-control', 'no-store').type('application/json').send(errorBody(err))
}

/**
 * The HTTP behaviour of a public API, on every route: CORS for `corsOrigins`, per-client rate
 * limiting (`@fastify/rate-limit`), a URL length cap (414), structured request logs at debug level (method, path and query, status, ms, IP;
 * no headers, so no credentials), XRPC-shaped answers for unknown routes (404), wrong HTTP
 * methods (405) and any error (4xx as thrown, anything else 500 and logged).
 * @param queries NSIDs served, to tell a wrong HTTP method (405) from an unknown method (404).
 */
export async function installHttp(app: FastifyInstance, opts: HttpOptions, queries: ReadonlySet<string>): Promise<void> {
  app.addHook('onRequest', async (req) => {
    if (req.url.length > MAX_URL_LENGTH) throw new XrpcError(414, 'InvalidRequest', `URL longer than ${MAX_URL_LENGTH} characters`)
  })
  await app.register(cors, {
    origin: corsOrigin(opts.corsOrigins),
    methods: ['GET', 'HEAD', 'OPTIONS'],
    exposedHeaders: ['etag', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after'],
    maxAge: 600,
  })
  if (opts.rateLimitMax > 0) await installRateLimit(app, opts.rateLimitMax, opts.rateLimitWindowMs)
  const log = opts.log.child({ component: 'appview' })
  app.addHook('onResponse', async (req, reply) => {
    if (log.isLevelEnabled('debug'))
      log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, ip: req.ip }, 'request')
  })

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]
    if (!path.startsWith('/xrpc/')) return sendXrpcError(reply, new XrpcError(404, 'NotFound', `Not found: ${req.method} ${echo(path)}`))
    const nsid = path.slice('/xrpc/'.length)
    if (queries.has(nsid))
      return sendXrpcError(reply.header('allow', 'GET, HEAD'), new XrpcError(405, 'InvalidRequest', `${nsid} is a query: use GET, not ${req.method}`))
    return sendXrpcError(reply, new XrpcError(404, 'MethodNotImplemented', `Method not implemented: ${echo(nsid)}`))
  })
  app.setErrorHandler((err, req, reply) => {
    const xrpc = toXrpcError(err)
    if (xrpc.status >= 500) log.error({ err, method: req.method, url: req.url }, 'request failed')
    return sendXrpcError(reply, xrpc)
  })
}

/**
 * Per-client rate limit with `@fastify/rate-limit`: at most `max` requests per client per
 * `windowMs`. Clients are IPv4 addresses or IPv6 /64 prefixes (one host usually holds a whole
 * /64). Every answer carries the IETF draft headers `ratelimit-limit`, `ratelimit-remaining`,
 * `ratelimit-reset` (seconds) and `ratelimit-policy` (as the PDS sends them); past the limit:
 * 429 `RateLimitExceeded` with `retry-after`.
 */
async function installRateLimit(app: FastifyInstance, max: number, windowMs: number): Promise<void> {
  const policy = `${max};w=${Math.round(windowMs / 1000)}`
  app.addHook('onRequest', async (_req, reply) => void reply.header('ratelimit-policy', policy))
  await app.register(rateLimit, {
    max,
    timeWindow: windowMs,
    enableDraftSpec: true,
    keyGenerator: (req) => clientKey(req.ip),
    errorResponseBuilder: (_req, ctx) =>
      Object.assign(
        new XrpcError(
          429,
          'RateLimitExceeded',
          `Rate limit exceeded: ${max} requests per ${windowMs / 1000} s per client; retry in ${Math.ceil(ctx.ttl / 1000)} s`,
        ),
        { statusCode: 429 },
      ),
  })
}

/** The key of a client address (rate limits, connection caps): IPv4 as is, IPv6 by its /64 prefix. */
export function clientKey(ip: string): string {
  if (!ip.includes(':') || ip.startsWith('::ffff:')) return ip
  const [head, tail] = ip.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return `${groups.slice(0, 4).join(':')}::/64`
}

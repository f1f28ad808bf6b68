import crypto from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { APPVIEW_LIMITS } from '../config.js'
import type { PartStatus } from '../supervisor.js'
import type { WriterStatus } from '../writer/status.js'
import { CursorCodec } from './cursor.js'
import { installDashboard } from './dashboard.js'
import { feedGeneratorMethods, installDidDocument, type FeedGeneratorOptions } from './feedgen.js'
import { health } from './health.js'
import { BODY_LIMIT, clientErrorHandler, frameworkErrors, installHttp, type HttpOptions } from './http.js'
import { limitedServer, type ConnectionLimits } from './limits.js'
import { installMetrics } from './metrics.js'
import { createMethods, type MethodDef } from './methods.js'
import { memoize, operatorStatus } from './operator.js'
import { operatorGuard, type OperatorAccess } from './operator-auth.js'
import { ReadModel } from './read-model.js'
import { ResponseCache, etagOf } from './response-cache.js'
import { ViewCache, type ViewOptions } from './views.js'
import { decodeParams } from './xrpc.js'

export interface AppViewOptions extends ViewOptions, HttpOptions, Partial<ConnectionLimits> {
  /**
   * The index: a PostgreSQL URL (INDEX_DATABASE_URL) or the SQLite file (INDEX_DB_PATH, which
   * must exist: migrate first). The AppView reads it only through its {@link ReadModel}, with
   * connections of its own.
   */
  index: string
  /** INDEX_READ_URL: a PostgreSQL read replica to read from; changes are still heard from `index`. */
  indexReadUrl?: string
  /** /xrpc/_health answers 503 when the ingest has not written for longer than this. */
  healthMaxLagSeconds: number
  /**
   * The writer's latest run for the dashboard and `/metrics`: from the live writer's ledger under
   * `start`, fetched from the writer's process by `serve` (WRITER_STATUS_URL); null when it has
   * never run. Absent, or rejecting: the dashboard says the writer is not reachable.
   */
  writerStatus?: () => Promise<WriterStatus | null>
  /** Serve the operator dashboard at `/`. */
  dashboard: boolean
  /** Item views kept serialised in memory (0: none). */
  viewCacheSize: number
  /** Bytes of serialised item views kept at most (0: none); default APPVIEW_LIMITS (src/config.ts). */
  viewCacheMaxBytes?: number
  /** Whole answers kept until the index next changes (0: none); see {@link ResponseCache}. */
  responseCacheSize: number
  /** Bytes of whole answers kept at most (0: none); default APPVIEW_LIMITS. */
  responseCacheMaxBytes?: number
  /** HMAC key of the feed cursors ({@link CursorCodec}, `cursorKey()`); default a random key (cursors then die with the instance). */
  cursorKey?: Uint8Array
  /** Proxies whose `X-Forwarded-For` gives the client IP (rate limiting, logs); none by default. */
  trustProxy?: string[]
  /** Under `ac-appview start`: the parts' states, for `/xrpc/_health` and the dashboard. */
  parts?: () => PartStatus[]
  /** Who may use the dashboard and `/metrics` (ADMIN_PASSWORD; open in dev). */
  operator: OperatorAccess
  /** Serve AC's feeds as a feed generator (`app.bsky.feed.*`, `/.well-known/did.json`); off when undefined. */
  feedGenerator?: FeedGeneratorOptions
  /** Registers further routes in the XRPC routes' scope (same hooks); the benchmark's plain routes. */
  extraRoutes?: (scope: FastifyInstance, methods: Record<string, MethodDef>) => void
}

/** Milliseconds the operator status (dashboard, /metrics gauges) is reused before being recomputed. */
const STATUS_TTL_MS = 2000
/** How long start-up waits for the index version (PostgreSQL: listening), so caching works from the first request, in ms. */
const VERSION_WAIT_MS = 5000

/**
 * The AppView: Fastify serving the XRPC query methods of lexicons/computer/aesthetic/{media,actor}
 * as native routes (params decoded and validated against the lexicons, errors as
 * `{ error, message }`), plus `GET /xrpc/_health`, `GET /metrics` and the operator dashboard.
 * HTTP behaviour (CORS, rate limits, size limits, logs): {@link installHttp}; connection caps and
 * the headers timeout ({@link ConnectionLimits}, default APPVIEW_LIMITS): {@link limitedServer}.
 * Responses of the query methods carry `Cache-Control: public, max-age=…` and a strong `ETag`
 * (304 on match), and are served from a {@link ResponseCache} until the index next changes.
 * Closing the instance drains in-flight requests and closes the read model's connections. The
 * AppView holds no state of its own besides caches that never outlive a change of the index, so
 * any number of instances can serve one index (on PostgreSQL, from any machine).
 */
export async function createAppView(opts: AppViewOptions): Promise<FastifyInstance> {
  const limits: typeof APPVIEW_LIMITS = {
    viewCacheMaxBytes: opts.viewCacheMaxBytes ?? APPVIEW_LIMITS.viewCacheMaxBytes,
    responseCacheMaxBytes: opts.responseCacheMaxBytes ?? APPVIEW_LIMITS.responseCacheMaxBytes,
    maxConnections: opts.maxConnections ?? APPVIEW_LIMITS.maxConnections,
    maxConnectionsPerClient: opts.maxConnectionsPerClient ?? APPVIEW_LIMITS.maxConnectionsPerClient,
    headersTimeoutMs: opts.headersTimeoutMs ?? APPVIEW_LIMITS.headersTimeoutMs,
  }
  const app = Fastify({
    serverFactory: limitedServer(limits, opts.trustProxy),
    loggerInstance: opts.log.child({ component: 'appview' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    requestTimeout: 30_000,
    trustProxy: opts.trustProxy?.length ? opts.trustProxy : false,
    clientErrorHandler,
    frameworkErrors,
  })
  const index = ReadModel.open(opts.index, { readUrl: opts.indexReadUrl, log: opts.log })
  app.addHook('onClose', () => index.close())
  const waiting = new AbortController()
  await Promise.race([index.ready(), sleep(VERSION_WAIT_MS, undefined, { signal: waiting.signal })])
  waiting.abort() // the timer ends with the wait (it would keep a stopping process alive)
  const views = new ViewCache(
    opts,
    (uris) => index.records(uris),
    opts.viewCacheSize,
    limits.viewCacheMaxBytes,
    (uris) => index.storedViews(uris),
  )
  const responses = new ResponseCache(() => index.dataVersion(), opts.responseCacheSize, limits.responseCacheMaxBytes)
  const cursors = new CursorCodec(opts.cursorKey ?? crypto.randomBytes(32))
  const methods = {
    ...createMethods(index, views, cursors),
    ...(opts.feedGenerator ? feedGeneratorMethods(index, opts.feedGenerator, cursors) : {}),
  }

  await installHttp(app, opts, new Set(Object.keys(methods)))
  const status = memoize(STATUS_TTL_MS, () => operatorStatus(index, opts.writerStatus, opts.parts))
  const guard = operatorGuard(opts.operator)
  installMetrics(app, status, { view: () => views.stats(), response: () => responses.stats() }, guard)
  app.get('/xrpc/_health', (_req, reply) => health(index, opts.healthMaxLagSeconds, reply, opts.parts))
  if (opts.feedGenerator) installDidDocument(app, opts.feedGenerator)

  await app.register(async (scope) => {
    scope.addHook('onSend', etag)
    for (const [nsid, def] of Object.entries(methods)) {
      const cacheControl = `public, max-age=${def.maxAge}`
      const answer = async (req: FastifyRequest, reply: FastifyReply) => {
        const params = decodeParams(nsid, req.query as Record<string, unknown>, def.lexicons)
        const { body, etag } = await responses.get(
          () => nsid + JSON.stringify(params, Object.keys(params).sort()),
          () => def.handler(params),
        )
        return reply.header('cache-control', cacheControl).header('etag', etag).type('application/json').send(body)
      }
      const auth = def.auth
      scope.get(`/xrpc/${nsid}`, auth ? async (req, reply) => (await auth(req.headers.authorization), answer(req, reply)) : answer)
    }
    if (opts.dashboard) installDashboard(scope, status, guard)
    opts.extraRoutes?.(scope, methods)
  })
  return app
}

/**
 * ETags on successful GET/HEAD answers: the route's own (query methods: see ResponseCache.get)
 * or a SHA-1 of the body ({@link etagOf}); 304 with no body when `If-None-Match` lists it.
 */
async function etag(req: FastifyRequest, reply: FastifyReply, payload: unknown) {
  if (reply.statusCode !== 200 || !(typeof payload === 'string' || Buffer.isBuffer(payload)) || (req.method !== 'GET' && req.method !== 'HEAD')) {
    reply.removeHeader('etag')
    return payload
  }
  const tag = (reply.getHeader('etag') as string | undefined) ?? etagOf(payload)
  reply.header('etag', tag)
  const match = req.headers['if-none-match']
  const opaque = tag.replace(/^W\//, '') // If-None-Match compares weakly (RFC 9110, 13.1.2)
  if (match && (match === '*' || match.split(',').some((t) => t.trim().replace(/^W\//, '') === opaque))) {
    reply.code(304)
    return ''
  }
  return payload
}

import cors from '@fastify/cors'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify'
import { Registry, collectDefaultMetrics, Histogram } from 'prom-client'
import { KINDS, byCodePrefix, type Kind } from '../collections/index.js'
import type { IndexDb } from '../db/index.js'
import type { Logger } from '../log.js'
import { decodeCursor, encodeCursor } from './cursor.js'
import { health } from './health.js'
import { countsByKind, feedPage, findActor, itemByCode, type FeedRow } from './queries.js'
import { itemView, type ViewOptions } from './views.js'
import { decodeParams, XrpcError } from './xrpc.js'

export interface AppViewOptions extends ViewOptions {
  db: IndexDb
  log: Logger
  /** /xrpc/_health answers 503 when the ingest has not written for longer than this. */
  healthMaxLagSeconds: number
}

/** `#abc`, `$abc` or `!abc`: a prefix and 1-10 letters or digits, case-sensitive (ac-data-model.md). */
const CODE = /^([#$!])([A-Za-z0-9]{1,10})$/

type Handler = (params: Record<string, any>) => Promise<unknown>

/**
 * The AppView: Fastify serving the XRPC query methods of lexicons/computer/aesthetic/{media,actor}
 * as native routes (params decoded and validated against the lexicons; errors as
 * `{ error, message }`), plus `GET /xrpc/_health` and `GET /metrics` (Prometheus).
 */
export function createAppView(opts: AppViewOptions): FastifyInstance {
  const { db } = opts
  const app = Fastify({
    loggerInstance: opts.log.child({ component: 'appview' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
  })
  void app.register(cors, { origin: true, methods: ['GET', 'HEAD', 'OPTIONS'] })

  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const duration = new Histogram({
    name: 'appview_request_duration_seconds',
    help: 'XRPC request duration by method and status',
    labelNames: ['method', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  })

  const page = (rows: FeedRow[], limit: number) => ({
    items: rows.slice(0, limit).map((r) => itemView(r, opts)),
    ...(rows.length > limit ? { cursor: encodeCursor(rows[limit - 1]) } : {}),
  })

  const methods: Record<string, Handler> = {
    /** `#code` painting, `$code` KidLisp, `!code` tape. Errors: InvalidCode, NotFound. */
    'computer.aesthetic.media.resolveCode': async ({ code }) => {
      const match = CODE.exec(code)
      if (!match) throw new XrpcError(400, 'InvalidCode', `Code must be #, $ or ! followed by 1-10 letters or digits, got ${JSON.stringify(code)}`)
      const row = await itemByCode(db, byCodePrefix.get(match[1])!.kind, match[2])
      if (!row) throw new XrpcError(400, 'NotFound', `No item has the code ${code}`)
      return { item: itemView(row, opts) }
    },
    /** All items, newest first. Errors: InvalidCursor. */
    'computer.aesthetic.media.getFeed': async ({ kind, limit, cursor }) => {
      return page(await feedPage(db, { kind: checkKind(kind), limit, after: decodeCursor(cursor) }), limit)
    },
    /** One author's items, newest first. Errors: ActorNotFound, InvalidCursor. */
    'computer.aesthetic.media.getAuthorFeed': async ({ actor, kind, limit, cursor }) => {
      const found = await findActor(db, actor)
      if (!found) throw new XrpcError(400, 'ActorNotFound', `No indexed actor is ${actor}`)
      return page(await feedPage(db, { did: found.did, kind: checkKind(kind), limit, after: decodeCursor(cursor) }), limit)
    },
    /** Handle, counts per kind and latest mood. Errors: ActorNotFound. */
    'computer.aesthetic.actor.getProfile': async ({ actor }) => {
      const found = await findActor(db, actor)
      if (!found) throw new XrpcError(400, 'ActorNotFound', `No indexed actor is ${actor}`)
      const [latestMood] = await feedPage(db, { did: found.did, kind: 'mood', limit: 1 })
      return {
        did: found.did,
        ...(found.handle ? { handle: found.handle } : {}),
        counts: await countsByKind(db, found.did),
        ...(latestMood ? { latestMood: itemView(latestMood, opts) } : {}),
      }
    },
  }

  for (const [nsid, handler] of Object.entries(methods)) {
    app.get(`/xrpc/${nsid}`, async (req, reply) => {
      const end = duration.startTimer({ method: nsid })
      try {
        const body = await handler(decodeParams(nsid, req.query as Record<string, unknown>))
        end({ status: 200 })
        return reply.header('cache-control', 'public, max-age=5').send(body)
      } catch (err) {
        const status = err instanceof XrpcError ? err.status : 500
        end({ status })
        return sendError(reply, err, opts.log)
      }
    })
  }

  app.get('/xrpc/_health', (_req, reply) => health(db, opts.healthMaxLagSeconds, reply))

  app.get('/metrics', async (_req, reply) => reply.header('content-type', registry.contentType).send(await registry.metrics()))

  app.setNotFoundHandler((req, reply) => {
    const nsid = req.url.startsWith('/xrpc/') ? req.url.slice(6).split('?')[0] : undefined
    if (nsid && methods[nsid]) return reply.code(405).send({ error: 'InvalidRequest', message: `${nsid} is a query: use GET` })
    if (nsid !== undefined) return reply.code(404).send({ error: 'MethodNotImplemented', message: `Method not found: ${nsid}` })
    return reply.code(404).send({ error: 'NotFound', message: `Not found: ${req.method} ${req.url.split('?')[0]}` })
  })
  app.setErrorHandler((err, _req, reply) => sendError(reply, err, opts.log))
  return app
}

function checkKind(kind: string | undefined): Kind | undefined {
  if (kind === undefined || (KINDS as readonly string[]).includes(kind)) return kind as Kind | undefined
  throw new XrpcError(400, 'InvalidRequest', `Parameter kind must be one of ${KINDS.join(', ')}`)
}

function sendError(reply: FastifyReply, err: unknown, log: Logger) {
  if (err instanceof XrpcError) return reply.code(err.status).header('cache-control', 'no-store').send({ error: err.error, message: err.message })
  const status = (err as { statusCode?: number }).statusCode
  if (status && status >= 400 && status < 500) return reply.code(status).send({ error: 'InvalidRequest', message: (err as Error).message })
  log.error({ err }, 'request failed')
  return reply.code(500).send({ error: 'InternalServerError', message: 'Internal Server Error' })
}

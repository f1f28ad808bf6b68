import type { FastifyReply } from 'fastify'
import type { IndexDb } from '../db/index.js'

/**
 * `GET /xrpc/_health`: per firehose host, the cursor, the time of its last event, seconds
 * behind and seconds since the ingest last wrote (events or heartbeat). 200 `ok`, or 503
 * `stale` when there is no cursor yet or any host has been silent longer than `maxLagSeconds`.
 */
export async function health(db: IndexDb, maxLagSeconds: number, reply: FastifyReply) {
  const rows = await db.selectFrom('cursor').selectAll().execute()
  const now = Date.now()
  const ingest = rows.map((r) => ({
    service: r.service,
    cursor: r.seq,
    lastEventTime: r.eventTime,
    secondsBehind: r.eventTime ? Math.max(0, Math.round((now - Date.parse(r.eventTime)) / 1000)) : null,
    secondsSinceUpdate: Math.round((now - Date.parse(r.updatedAt)) / 1000),
  }))
  const healthy = ingest.length > 0 && ingest.every((i) => i.secondsSinceUpdate <= maxLagSeconds)
  return reply.code(healthy ? 200 : 503).header('cache-control', 'no-store').send({ status: healthy ? 'ok' : 'stale', ingest })
}

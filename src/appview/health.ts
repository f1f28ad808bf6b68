import type { FastifyReply } from 'fastify'
import type { BackfillProgress } from '../db/store.js'
import type { ReadModel } from './read-model.js'

/** One firehose host in the `/xrpc/_health` answer. Times are ISO 8601; durations in seconds. */
export interface HostHealth {
  service: string
  /** Last committed seq; null while following the live tail before any event. */
  cursor: number | null
  lastEventTime: string | null
  /** Now minus the host's timestamp of the last committed event. */
  secondsBehind: number | null
  /** Since the ingest last wrote (a batch, or its heartbeat while connected and idle). */
  secondsSinceUpdate: number
  stale: boolean
  backfill: Omit<BackfillProgress, 'source'> | null
}

/** A part run by `ac-appview start`, as public health shows it (its last error is for operators only). */
export interface PartHealth {
  name: string
  state: 'starting' | 'running' | 'failed' | 'stopped'
  restarts: number
  since: string
}

/** The body of `/xrpc/_health`: `ok` (200), or `stale` or `failed` (503). */
export interface HealthReport {
  status: 'ok' | 'stale' | 'failed'
  ingest: HostHealth[]
  quarantined: number
  /**
   * The index version this process's answers reflect (bumped by every ingest transaction that changes answers; see
   * ReadModel.answeredVersion): equal across AppView processes that answer alike; lower on one
   * reading a lagging replica. Null while unknown.
   */
  indexVersion: number | null
  /** Under `ac-appview start`: each part's state; a failed part makes the status `failed`. */
  parts?: PartHealth[]
}

/**
 * Ingest health from the index alone, through the read model (so it works wherever the ingest
 * runs: in this process, in `ac-appview ingest`, on another machine): per firehose host the cursor, the time of its last event, seconds behind,
 * seconds since the ingest last wrote, and backfill progress (repos pending, done, failed).
 * Stale when there is no cursor yet or a host has not been written for more than `maxLagSeconds`
 * (the ingest writes a heartbeat every 10 s only while connected and idle, so a dropped or stalled
 * stream goes stale; a busy one writes batches).
 */
export async function ingestHealth(index: ReadModel, maxLagSeconds: number): Promise<HealthReport> {
  const { cursors, backfills, quarantined, indexVersion } = await index.ingestState()
  const now = Date.now()
  const ingest = cursors.map((r) => {
    const secondsSinceUpdate = Math.round((now - Date.parse(r.updatedAt)) / 1000)
    const { source: _, ...backfill } = backfills.find((b) => b.source === r.service) ?? { source: null }
    return {
      service: r.service,
      cursor: r.seq >= 0 ? r.seq : null,
      lastEventTime: r.eventTime,
      secondsBehind: r.eventTime ? Math.max(0, Math.round((now - Date.parse(r.eventTime)) / 1000)) : null,
      secondsSinceUpdate,
      stale: secondsSinceUpdate > maxLagSeconds,
      backfill: 'status' in backfill ? (backfill as HostHealth['backfill']) : null,
    }
  })
  const healthy = ingest.length > 0 && ingest.every((i) => !i.stale)
  return { status: healthy ? 'ok' : 'stale', ingest, quarantined, indexVersion }
}

/**
 * `GET /xrpc/_health`: {@link ingestHealth} as JSON, with the parts of `ac-appview start` when
 * given; 200 when ok, 503 when stale or a part failed; never cached.
 */
export async function health(index: ReadModel, maxLagSeconds: number, reply: FastifyReply, parts?: () => PartHealth[]) {
  const report: HealthReport = await ingestHealth(index, maxLagSeconds)
  if (parts) {
    report.parts = parts().map(({ name, state, restarts, since }) => ({ name, state, restarts, since }))
    if (report.parts.some((p) => p.state === 'failed')) report.status = 'failed'
  }
  return reply
    .code(report.status === 'ok' ? 200 : 503)
    .header('cache-control', 'no-store')
    .send(report)
}

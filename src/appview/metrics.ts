import type { FastifyInstance, onRequestHookHandler } from 'fastify'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { processRegistry } from '../metrics.js'
import type { OperatorStatus } from './operator.js'

/** Metrics counted while views are built (process-wide: every AppView's registry serves them). */
export const viewMetrics = {
  /** Record URLs left out of views: not https on AC's or the configured origins (VIEW_URL_ORIGINS). */
  urlsDropped: new Counter({
    name: 'appview_view_urls_dropped_total',
    help: 'Record URLs dropped from views: not https on an allowed origin',
    labelNames: ['field'],
    registers: [],
  }),
}

/** Size of one cache, as its byte bound counts it. */
export interface CacheStats {
  entries: number
  bytes: number
}

/**
 * `GET /metrics` (Prometheus text format), an operator endpoint (`guard`): Node process metrics,
 * request durations by route and status (`appview_request_duration_seconds`), record URLs dropped
 * from views, the caches' sizes (`appview_cache_entries`, `appview_cache_bytes` by cache), and
 * index gauges read at scrape time from `status()`: items per kind, quarantined records, code
 * conflicts, actors.
 * The metrics of the other parts running in this process (`ingest_*`, `writer_*`, `ac_part_*`;
 * src/metrics.ts) are served too.
 */
export function installMetrics(
  app: FastifyInstance,
  status: () => Promise<OperatorStatus>,
  caches: Record<string, () => CacheStats>,
  guard: onRequestHookHandler,
): void {
  const registry = new Registry()
  registry.registerMetric(viewMetrics.urlsDropped)
  const duration = new Histogram({
    name: 'appview_request_duration_seconds',
    help: 'Request duration by route (XRPC NSID or path) and status',
    labelNames: ['route', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  })
  const gauge = (name: string, help: string, labelNames: string[], read: (g: Gauge, s: OperatorStatus) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        read(this, await status())
      },
    })
  gauge('appview_index_items', 'Indexed items per kind', ['kind'], (g, s) => Object.entries(s.counts).forEach(([kind, n]) => g.set({ kind }, n)))
  gauge('appview_quarantined_records', 'Records held in quarantine (failed their lexicon)', [], (g, s) => g.set(s.quarantine.total))
  gauge('appview_code_conflicts', 'Short codes claimed by more than one record (capped at 50)', [], (g, s) => g.set(s.conflicts.length))
  gauge('appview_index_actors', 'Indexed actors', ['state'], (g, s) => Object.entries(s.actors).forEach(([state, n]) => g.set({ state }, n)))
  const cacheGauge = (name: string, help: string, read: (c: CacheStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['cache'],
      registers: [registry],
      collect() {
        for (const [cache, stats] of Object.entries(caches)) this.set({ cache }, read(stats()))
      },
    })
  cacheGauge('appview_cache_entries', 'Entries held by the view and response caches', (c) => c.entries)
  cacheGauge('appview_cache_bytes', 'Bytes held by the view and response caches, as their bounds count them', (c) => c.bytes)

  app.addHook('onResponse', async (req, reply) => {
    duration.observe({ route: req.routeOptions.url ?? 'unmatched', status: reply.statusCode }, reply.elapsedTime / 1000)
  })
  app.get('/metrics', { onRequest: guard }, async (_req, reply) => {
    const merged = processRegistry(registry)
    return reply
      .header('cache-control', 'no-store')
      .type(merged.contentType)
      .send(await merged.metrics())
  })
}

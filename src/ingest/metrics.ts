import { Counter, Gauge, Registry } from 'prom-client'
import { registerPartMetrics } from '../metrics.js'

/**
 * The ingest's Prometheus metrics, in a registry of their own registered with the process's
 * (src/metrics.ts): served by the AppView's `/metrics` when both run in one process, and on
 * METRICS_PORT by `ac-appview ingest` alone. Names follow the Prometheus conventions (`_total`
 * counters, base units).
 */
export const ingestMetrics = new Registry()
registerPartMetrics(ingestMetrics)

const registers = [ingestMetrics]

export const metrics = {
  /** Firehose messages received, by host and message type (#commit, #identity…). */
  eventsIn: new Counter({ name: 'ingest_events_received_total', help: 'Firehose messages received', labelNames: ['service', 'type'], registers }),
  /** Firehose events whose effects (if any) are committed to the index with the cursor. */
  eventsIndexed: new Counter({
    name: 'ingest_events_indexed_total',
    help: 'Firehose events committed to the index (cursor advanced past them)',
    labelNames: ['service'],
    registers,
  }),
  /** Record operations applied, by collection and action (create, update, delete). */
  records: new Counter({
    name: 'ingest_records_total',
    help: 'computer.aesthetic.* record operations applied to the index',
    labelNames: ['collection', 'action'],
    registers,
  }),
  /** `app.bsky.feed.post` records about AC applied (create, update, delete), and posts dropped for failing Bluesky's lexicon (invalid). */
  posts: new Counter({
    name: 'ingest_posts_total',
    help: 'Posts about AC applied to the index, by action; invalid: dropped for failing app.bsky.feed.post',
    labelNames: ['action'],
    registers,
  }),
  /** URLs records carry that the views the ingest stores leave out (not https on VIEW_URL_ORIGINS; src/item-view.ts), by field. */
  viewUrlsDropped: new Counter({
    name: 'ingest_view_urls_dropped_total',
    help: 'Record URLs left out of stored item views: not https on an allowed origin',
    labelNames: ['field'],
    registers,
  }),
  /** Records sent to quarantine (a record quarantined twice counts twice). */
  quarantinedTotal: new Counter({
    name: 'ingest_quarantined_total',
    help: 'Records that failed their lexicon and went to quarantine',
    labelNames: ['collection'],
    registers,
  }),
  /** Rows in the quarantine table now. */
  quarantined: new Gauge({ name: 'ingest_quarantined_records', help: 'Records in quarantine now', registers }),
  /** Events received but not yet committed: in the parse window plus the open batch. */
  queueDepth: new Gauge({ name: 'ingest_queue_depth', help: 'Events received but not yet committed', labelNames: ['service'], registers }),
  /** Seconds between the host's timestamp of the last committed event and its commit. */
  lag: new Gauge({
    name: 'ingest_lag_seconds',
    help: 'Seconds between the last committed event and now, by its host timestamp',
    labelNames: ['service'],
    registers,
  }),
  /** Last committed seq per host. */
  cursor: new Gauge({ name: 'ingest_cursor', help: 'Last committed firehose seq', labelNames: ['service'], registers }),
  /** 1 while this process writes the index (on PostgreSQL: holds the leader lock; src/ingest/leader.ts). */
  leader: new Gauge({
    name: 'ingest_leader',
    help: '1 while this ingest process writes the index (on PostgreSQL: holds the leader lock), 0 while it stands by',
    registers,
  }),
  /** 1 while the WebSocket to the host is open. */
  connected: new Gauge({ name: 'ingest_connected', help: '1 while connected to the firehose host', labelNames: ['service'], registers }),
  /** Reconnects, by reason (error, watchdog, future cursor…). */
  reconnects: new Counter({ name: 'ingest_reconnects_total', help: 'Firehose reconnects by reason', labelNames: ['service', 'reason'], registers }),
  /** #identity, #account and #sync events from a host that does not speak for their DID (src/ingest/provenance.ts). */
  eventsRefused: new Counter({
    name: 'ingest_events_refused_total',
    help: "Identity, account and sync events refused: their host is neither the DID's PDS nor a trusted relay, and the PDS did not confirm",
    labelNames: ['service', 'type'],
    registers,
  }),
  /** Commits whose signature or MST proof did not verify (the repo is re-synced). */
  verifyFailures: new Counter({ name: 'ingest_verify_failures_total', help: 'Events that failed verification', labelNames: ['service'], registers }),
  /** Backfill repos by state (pending, done, failed). */
  backfillRepos: new Gauge({ name: 'ingest_backfill_repos', help: 'Repos of the current backfill by state', labelNames: ['service', 'state'], registers }),
}

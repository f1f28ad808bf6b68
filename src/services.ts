import { ConfigError, type Config } from './config.js'
import pRetry from 'p-retry'
import { describeIndex, migrateIndex, openIndex, type IndexDb } from './db/index.js'
import { cursorKey } from './appview/cursor.js'
import type { AppViewOptions } from './appview/server.js'
import type { PublishedFeed } from './feeds/publish.js'
import { configuredIdentity } from './identity.js'
import type { Logger } from './log.js'
import type { WriterStatus } from './writer/status.js'

/**
 * Opens the index (INDEX_DATABASE_URL, else the SQLite file INDEX_DB_PATH) and applies pending
 * migrations. Processes started together on one new SQLite index (`start --only ingest` and
 * `--only appview`) may race to apply the same migration: the loser tries again (a few times, a
 * moment apart) and finds it applied (on PostgreSQL kysely serialises them with a lock).
 * @throws the failing migration's error when the index is still behind after the retries.
 */
export async function openMigratedIndex(cfg: Config, log: Logger): Promise<IndexDb> {
  const db = openIndex(cfg.index)
  try {
    const applied = await pRetry(() => migrateIndex(db), { retries: 10, minTimeout: 200, maxTimeout: 1000, randomize: true })
    if (applied.length) log.info({ applied, index: describeIndex(cfg.index) }, 'index migrated')
    return db
  } catch (err) {
    await db.destroy()
    throw err
  }
}

/*
 * The AppView, the writer and feed publishing are loaded when a command starts them: each loads
 * @atproto/api (about a second of CPU), which an ingest alone (`ingest`, `start --only ingest`,
 * a standby taking over) does without.
 */
type WriterCommands = typeof import('./writer/commands.js')
const writerCommands = () => import('./writer/commands.js')
/** `writer audit` (src/writer/commands.ts). */
export const runAudit: WriterCommands['runAudit'] = async (...args) => (await writerCommands()).runAudit(...args)
/** `writer backfill` (src/writer/commands.ts). */
export const runBackfill: WriterCommands['runBackfill'] = async (...args) => (await writerCommands()).runBackfill(...args)
/** `writer live` (src/writer/commands.ts). */
export const runLive: WriterCommands['runLive'] = async (...args) => (await writerCommands()).runLive(...args)
/** `writer share` (src/writer/commands.ts). */
export const runShare: WriterCommands['runShare'] = async (...args) => (await writerCommands()).runShare(...args)
/** `writer wipe` (src/writer/commands.ts). */
export const runWipe: WriterCommands['runWipe'] = async (...args) => (await writerCommands()).runWipe(...args)
export { parseKinds } from './usage.js'

/** Starts the ingest (src/ingest/run.ts); here so every command finds its service in one place. */
export { runIngest } from './ingest/run.js'

/**
 * Starts the AppView on HOST:PORT over the index (INDEX_DATABASE_URL, reading from INDEX_READ_URL
 * when set, else the SQLite file INDEX_DB_PATH, which must be migrated), with the feed generator
 * when configured (FEEDGEN_HOSTNAME or FEEDGEN_SERVICE_DID); resolves to the app and its base
 * URL. The writer's status for the dashboard is `opts.writerStatus` (under `start`), else fetched
 * from WRITER_STATUS_URL when set. `app.close()` drains in-flight requests (graceful shutdown).
 */
export async function runAppView(
  cfg: Config,
  log: Logger,
  opts: { operatorOpen?: boolean; parts?: AppViewOptions['parts']; writerStatus?: AppViewOptions['writerStatus'] } = {},
) {
  const { createAppView } = await import('./appview/server.js')
  const app = await createAppView({
    parts: opts.parts,
    operator: { password: cfg.ADMIN_PASSWORD, open: opts.operatorOpen },
    index: cfg.index,
    indexReadUrl: cfg.INDEX_READ_URL,
    writerStatus: opts.writerStatus ?? (cfg.WRITER_STATUS_URL ? () => fetchWriterStatus(cfg.WRITER_STATUS_URL!, cfg.ADMIN_PASSWORD) : undefined),
    log,
    publicUrl: cfg.AC_PUBLIC_URL.replace(/\/+$/, ''),
    blobCdnTemplate: cfg.BLOB_CDN_TEMPLATE,
    healthMaxLagSeconds: cfg.HEALTH_MAX_LAG_SECONDS,
    dashboard: cfg.DASHBOARD,
    viewCacheSize: cfg.VIEW_CACHE_SIZE,
    viewCacheMaxBytes: cfg.VIEW_CACHE_MAX_BYTES,
    responseCacheSize: cfg.RESPONSE_CACHE_SIZE,
    responseCacheMaxBytes: cfg.RESPONSE_CACHE_MAX_BYTES,
    viewUrlOrigins: cfg.viewUrlOrigins,
    cursorKey: cursorKey(cfg.DATA_DIR, cfg.CURSOR_SECRET),
    corsOrigins: cfg.corsOrigins,
    rateLimitMax: cfg.RATE_LIMIT_MAX,
    rateLimitWindowMs: cfg.RATE_LIMIT_WINDOW_MS,
    trustProxy: cfg.TRUST_PROXY,
    maxConnections: cfg.MAX_CONNECTIONS,
    maxConnectionsPerClient: cfg.MAX_CONNECTIONS_PER_CLIENT,
    headersTimeoutMs: cfg.HEADERS_TIMEOUT_MS,
    feedGenerator: cfg.feedgen && { ...cfg.feedgen, resolver: configuredIdentity(cfg, log).resolver },
  })
  const address = await app.listen({ host: cfg.HOST, port: cfg.PORT })
  return { app, url: address.replace('[::1]', 'localhost') }
}

/** How long the writer's process has to answer `/status`, in ms (the dashboard polls every 10 s). */
const WRITER_STATUS_TIMEOUT_MS = 2000

/**
 * The writer's latest run from its process (`writer live` or `start --only writer` serving
 * `/status` on METRICS_PORT; src/metrics.ts), at `url` (WRITER_STATUS_URL), with the operator
 * credential (ADMIN_PASSWORD, as a Bearer token).
 * @throws Error naming the failure (no answer, HTTP status): the dashboard shows the writer as not reachable.
 */
export async function fetchWriterStatus(url: string, password: string | undefined): Promise<WriterStatus | null> {
  const res = await fetch(url, {
    headers: password ? { authorization: `Bearer ${password}` } : {},
    redirect: 'error',
    signal: AbortSignal.timeout(WRITER_STATUS_TIMEOUT_MS),
  }).catch((err: Error) => {
    throw new Error(`the writer's process did not answer at WRITER_STATUS_URL: ${(err.cause as Error)?.message ?? err.message}`)
  })
  if (!res.ok) {
    await res.body?.cancel()
    throw new Error(`the writer's process answered ${res.status} at WRITER_STATUS_URL${res.status === 401 ? ' (ADMIN_PASSWORD differs)' : ''}`)
  }
  return (await res.json()) as WriterStatus | null
}

/**
 * `ac-appview feeds publish`: writes the feed generator records (src/feeds/publish.ts) to AC's
 * account (AC_BSKY_DID, AC_BSKY_PASSWORD), each pointing at the service DID.
 * @throws ConfigError when FEEDGEN_HOSTNAME (or FEEDGEN_SERVICE_DID) or AC_BSKY_* is unset.
 */
export async function runPublishFeeds(cfg: Config, log: Logger): Promise<PublishedFeed[]> {
  if (!cfg.feedgen) throw new ConfigError('missing configuration: FEEDGEN_HOSTNAME or FEEDGEN_SERVICE_DID must be set (the service the feed records point at)')
  const [{ publishFeeds }, { bskyAccount }] = await Promise.all([import('./feeds/publish.js'), import('./writer/bsky-account.js')])
  return publishFeeds({ account: await bskyAccount(cfg, log), serviceDid: cfg.feedgen.serviceDid, log: log.child({ component: 'feeds' }) })
}

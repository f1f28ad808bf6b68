import { requireConfig, type Config } from './config.js'
import { migrateIndex, openIndex, type IndexDb } from './db/index.js'
import { createAppView } from './appview/server.js'
import { startIngest, type Ingest } from './ingest/firehose.js'
import { Identity } from './ingest/identity.js'
import type { Logger } from './log.js'

/** Opens the index at INDEX_DB_PATH and applies pending migrations. */
export async function openMigratedIndex(cfg: Config, log: Logger): Promise<IndexDb> {
  const db = openIndex(cfg.indexDbPath)
  const applied = await migrateIndex(db)
  if (applied.length) log.info({ applied }, 'index migrated')
  return db
}

export { parseKinds, runAudit, runBackfill, runLive, runWipe } from './writer/commands.js'

/**
 * Starts the ingest from FIREHOSE_URL (default PDS_URL; several hosts when comma-separated) into
 * the index, with the INGEST_* settings. `backfill` runs a backfill of every host now;
 * `startCursor` replays from that seq instead of the stored cursor.
 */
export async function runIngest(cfg: Config, log: Logger, db: IndexDb, opts: { backfill?: boolean; startCursor?: number } = {}): Promise<Ingest> {
  requireConfig(cfg, 'firehoseUrl')
  const identity = new Identity({
    plcUrl: cfg.PLC_URL,
    handleResolverUrl: cfg.HANDLE_RESOLVER_URL,
    allowPrivateNetwork: cfg.ALLOW_PRIVATE_NETWORK,
    log: log.child({ component: 'identity' }),
  })
  return startIngest({
    db,
    identity,
    services: cfg.firehoseUrls,
    trustedPds: cfg.trustedPds,
    log: log.child({ component: 'ingest' }),
    verify: cfg.INGEST_VERIFY,
    batchSize: cfg.INGEST_BATCH_SIZE,
    watchdogMs: cfg.INGEST_WATCHDOG_SECONDS * 1000,
    backfillConcurrency: cfg.INGEST_BACKFILL_CONCURRENCY,
    ...opts,
  })
}

/**
 * Starts the AppView on HOST:PORT over the index `db` (which must be the file INDEX_DB_PATH: the
 * read path opens its own read-only connection to it); resolves to the app and its base URL.
 * `app.close()` drains in-flight requests (graceful shutdown).
 */
export async function runAppView(cfg: Config, log: Logger, db: IndexDb) {
  const app = await createAppView({
    db,
    indexPath: cfg.indexDbPath,
    log,
    publicUrl: cfg.AC_PUBLIC_URL.replace(/\/+$/, ''),
    blobCdnTemplate: cfg.BLOB_CDN_TEMPLATE,
    healthMaxLagSeconds: cfg.HEALTH_MAX_LAG_SECONDS,
    dataDir: cfg.DATA_DIR,
    dashboard: cfg.DASHBOARD,
    viewCacheSize: cfg.VIEW_CACHE_SIZE,
    responseCacheSize: cfg.RESPONSE_CACHE_SIZE,
    corsOrigins: cfg.corsOrigins,
    rateLimitMax: cfg.RATE_LIMIT_MAX,
    rateLimitWindowMs: cfg.RATE_LIMIT_WINDOW_MS,
    trustProxy: cfg.TRUST_PROXY,
  })
  const address = await app.listen({ host: cfg.HOST, port: cfg.PORT })
  return { app, url: address.replace('[::1]', 'localhost') }
}

import type { Config } from './config.js'
import { migrateIndex, openIndex, type IndexDb } from './db/index.js'
import { cursorKey } from './appview/cursor.js'
import { createAppView, type AppViewOptions } from './appview/server.js'
import type { Logger } from './log.js'

/** Opens the index at INDEX_DB_PATH and applies pending migrations. */
export async function openMigratedIndex(cfg: Config, log: Logger): Promise<IndexDb> {
  const db = openIndex(cfg.indexDbPath)
  const applied = await migrateIndex(db)
  if (applied.length) log.info({ applied }, 'index migrated')
  return db
}

export { runAudit, runBackfill, runLive, runWipe } from './writer/commands.js'
export { parseKinds } from './usage.js'

/** Starts the ingest (src/ingest/run.ts); here so every command finds its service in one place. */
export { runIngest } from './ingest/run.js'

/**
 * Starts the AppView on HOST:PORT over the index `db` (which must be the file INDEX_DB_PATH: the
 * read path opens its own read-only connection to it); resolves to the app and its base URL.
 * `app.close()` drains in-flight requests (graceful shutdown).
 */
export async function runAppView(cfg: Config, log: Logger, db: IndexDb, opts: { operatorOpen?: boolean; parts?: AppViewOptions['parts'] } = {}) {
  const app = await createAppView({
    parts: opts.parts,
    operator: { password: cfg.ADMIN_PASSWORD, open: opts.operatorOpen },
    db,
    indexPath: cfg.indexDbPath,
    log,
    publicUrl: cfg.AC_PUBLIC_URL.replace(/\/+$/, ''),
    blobCdnTemplate: cfg.BLOB_CDN_TEMPLATE,
    healthMaxLagSeconds: cfg.HEALTH_MAX_LAG_SECONDS,
    dataDir: cfg.DATA_DIR,
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
  })
  const address = await app.listen({ host: cfg.HOST, port: cfg.PORT })
  return { app, url: address.replace('[::1]', 'localhost') }
}

import { ConfigError, type Config } from './config.js'
import pRetry from 'p-retry'
import { migrateIndex, openIndex, type IndexDb } from './db/index.js'
import { cursorKey } from './appview/cursor.js'
import { createAppView, type AppViewOptions } from './appview/server.js'
import { publishFeeds, type PublishedFeed } from './feeds/publish.js'
import { configuredIdentity } from './ingest/identity.js'
import type { Logger } from './log.js'
import { bskyAccount } from './writer/bsky-account.js'

/**
 * Opens the index at INDEX_DB_PATH and applies pending migrations. Processes started together on
 * one index (`start --only ingest` and `--only appview`) may race to apply the same migration:
 * the loser tries again (a few times, a moment apart) and finds it applied.
 * @throws the failing migration's error when the index is still behind after the retries.
 */
export async function openMigratedIndex(cfg: Config, log: Logger): Promise<IndexDb> {
  const db = openIndex(cfg.indexDbPath)
  try {
    const applied = await pRetry(() => migrateIndex(db), { retries: 10, minTimeout: 200, maxTimeout: 1000, randomize: true })
    if (applied.length) log.info({ applied }, 'index migrated')
  } catch (err) {
    await db.destroy()
    throw err
  }
  return db
}

export { runAudit, runBackfill, runLive, runShare, runWipe } from './writer/commands.js'
export { parseKinds } from './usage.js'

/** Starts the ingest (src/ingest/run.ts); here so every command finds its service in one place. */
export { runIngest } from './ingest/run.js'

/**
 * Starts the AppView on HOST:PORT over the index `db` (which must be the file INDEX_DB_PATH: the
 * read path opens its own read-only connection to it), with the feed generator when configured
 * (FEEDGEN_HOSTNAME or FEEDGEN_SERVICE_DID); resolves to the app and its base URL.
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
    feedGenerator: cfg.feedgen && { ...cfg.feedgen, resolver: configuredIdentity(cfg, log).resolver },
  })
  const address = await app.listen({ host: cfg.HOST, port: cfg.PORT })
  return { app, url: address.replace('[::1]', 'localhost') }
}

/**
 * `ac-appview feeds publish`: writes the feed generator records (src/feeds/publish.ts) to AC's
 * account (AC_BSKY_DID, AC_BSKY_PASSWORD), each pointing at the service DID.
 * @throws ConfigError when FEEDGEN_HOSTNAME (or FEEDGEN_SERVICE_DID) or AC_BSKY_* is unset.
 */
export async function runPublishFeeds(cfg: Config, log: Logger): Promise<PublishedFeed[]> {
  if (!cfg.feedgen) throw new ConfigError('missing configuration: FEEDGEN_HOSTNAME or FEEDGEN_SERVICE_DID must be set (the service the feed records point at)')
  return publishFeeds({ account: await bskyAccount(cfg, log), serviceDid: cfg.feedgen.serviceDid, log: log.child({ component: 'feeds' }) })
}

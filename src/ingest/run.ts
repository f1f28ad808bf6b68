import { requireConfig, type Config } from '../config.js'
import type { IndexDb } from '../db/index.js'
import type { Logger } from '../log.js'
import { startIngest, type Ingest } from './firehose.js'
import { configuredIdentity } from './identity.js'

/**
 * Starts the ingest from FIREHOSE_URL (default PDS_URL; several hosts when comma-separated) into
 * the index, with the INGEST_* settings (posts about AC too, unless INGEST_POSTS is false).
 * `backfill` runs a backfill of every host now; `startCursor` replays from that seq instead of the
 * stored cursor.
 * @throws ConfigError when neither FIREHOSE_URL nor PDS_URL is set.
 */
export async function runIngest(cfg: Config, log: Logger, db: IndexDb, opts: { backfill?: boolean; startCursor?: number } = {}): Promise<Ingest> {
  requireConfig(cfg, 'firehoseUrl')
  return startIngest({
    db,
    identity: configuredIdentity(cfg, log),
    services: cfg.firehoseUrls,
    trustedPds: cfg.trustedPds,
    trustedRelays: cfg.trustedRelays,
    log: log.child({ component: 'ingest' }),
    verify: cfg.INGEST_VERIFY,
    batchSize: cfg.INGEST_BATCH_SIZE,
    watchdogMs: cfg.INGEST_WATCHDOG_SECONDS * 1000,
    backfillConcurrency: cfg.INGEST_BACKFILL_CONCURRENCY,
    postsFor: cfg.INGEST_POSTS ? cfg.AC_PUBLIC_URL : undefined,
    ...opts,
  })
}

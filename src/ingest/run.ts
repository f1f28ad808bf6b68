import { requireConfig, type Config } from '../config.js'
import { isPostgresUrl, migrateIndex, openIndex, type IndexDb } from '../db/index.js'
import type { Logger } from '../log.js'
import { startIngest, type Ingest } from './firehose.js'
import { configuredIdentity } from '../identity.js'
import { LeaderElection } from './leader.js'
import { metrics } from './metrics.js'
import { createVerifyPool } from './verify-pool.js'

/** The ingest as a command runs it: on PostgreSQL, one of possibly several processes of which one leads. */
export interface RunningIngest extends Ingest {
  /** Whether this process writes the index now (always on SQLite; on PostgreSQL while it holds the leader lock). */
  leading(): boolean
}

/**
 * Starts the ingest from FIREHOSE_URL (default PDS_URL; several hosts when comma-separated) into
 * the index (INDEX_DATABASE_URL, else the SQLite file INDEX_DB_PATH), migrated first, with the
 * INGEST_* settings (posts about AC too, unless INGEST_POSTS is false). On PostgreSQL the process
 * campaigns for the leader lock (src/ingest/leader.ts) and ingests only while it holds it: start
 * as many as you like, one writes, the others stand by and take over within
 * INGEST_FAILOVER_SECONDS, resuming from the committed cursor. `backfill` runs a backfill of
 * every host now (by the leader); `startCursor` replays from that seq instead of the stored cursor.
 * Commits are verified on INGEST_VERIFY_THREADS worker threads (src/ingest/verify-pool.ts), one
 * pool for the process, started at once: a standby's workers are loaded before it takes over.
 * @throws ConfigError when neither FIREHOSE_URL nor PDS_URL is set.
 */
export async function runIngest(cfg: Config, log: Logger, opts: { backfill?: boolean; startCursor?: number } = {}): Promise<RunningIngest> {
  requireConfig(cfg, 'firehoseUrl')
  const ingestLog = log.child({ component: 'ingest' })
  const verifier = createVerifyPool(cfg.INGEST_VERIFY_THREADS)
  const start = async (db: IndexDb) => {
    await migrateIndex(db)
    return startIngest({
      verifier,
      db,
      identity: configuredIdentity(cfg, log),
      services: cfg.firehoseUrls,
      trustedPds: cfg.trustedPds,
      trustedRelays: cfg.trustedRelays,
      log: ingestLog,
      verify: cfg.INGEST_VERIFY,
      batchSize: cfg.INGEST_BATCH_SIZE,
      watchdogMs: cfg.INGEST_WATCHDOG_SECONDS * 1000,
      backfillConcurrency: cfg.INGEST_BACKFILL_CONCURRENCY,
      postsFor: cfg.INGEST_POSTS ? cfg.AC_PUBLIC_URL : undefined,
      views: { publicUrl: cfg.AC_PUBLIC_URL, blobCdnTemplate: cfg.BLOB_CDN_TEMPLATE, viewUrlOrigins: cfg.viewUrlOrigins },
      ...opts,
    })
  }
  if (!isPostgresUrl(cfg.index)) {
    const db = openIndex(cfg.index)
    const ingest = await start(db).catch(async (err) => {
      await db.destroy()
      await verifier.close()
      throw err
    })
    metrics.leader.set(1)
    return {
      ...ingest,
      leading: () => true,
      async stop() {
        await ingest.stop()
        await db.destroy()
        await verifier.close()
      },
    }
  }
  const election = new LeaderElection({ url: cfg.index, failoverSeconds: cfg.INGEST_FAILOVER_SECONDS, log: ingestLog })
  let current: Ingest | undefined
  metrics.leader.set(0)
  election.start(async (db) => {
    current = await start(db)
    metrics.leader.set(1)
    return {
      async stop() {
        metrics.leader.set(0)
        const ingest = current
        current = undefined
        await ingest?.stop()
      },
    }
  })
  return {
    cursor: () => current?.cursor(),
    backfillsSettled: async () => current?.backfillsSettled(),
    leading: () => election.isLeader(),
    async stop() {
      await election.stop()
      await verifier.close()
    },
  }
}

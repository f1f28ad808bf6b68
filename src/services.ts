import { MongoClient } from 'mongodb'
import { KINDS, type Kind } from './collections/index.js'
import { requireConfig, type Config } from './config.js'
import { migrateIndex, openIndex, type IndexDb } from './db/index.js'
import { createAppView } from './appview/server.js'
import { startIngest, type Ingest } from './ingest/firehose.js'
import { Identity } from './ingest/identity.js'
import type { Logger } from './log.js'
import { backfill, type BackfillOptions, type BackfillReport } from './writer/backfill.js'
import { createWriterContext } from './writer/context.js'

/** Opens the index at INDEX_DB_PATH and applies pending migrations. */
export async function openMigratedIndex(cfg: Config, log: Logger): Promise<IndexDb> {
  const db = openIndex(cfg.indexDbPath)
  const applied = await migrateIndex(db)
  if (applied.length) log.info({ applied }, 'index migrated')
  return db
}

export type BackfillRequest = Pick<BackfillOptions, 'dryRun' | 'only' | 'anonymous' | 'onProgress'> & {
  /** AC handles (with or without `@`), resolved through the `@handles` collection. */
  handles?: string[]
  concurrency?: number
}

/**
 * Runs the writer backfill against MONGODB_URI and PDS_URL.
 * @throws ConfigError when either is unset; Error when a handle is unknown.
 */
export async function runBackfill(cfg: Config, log: Logger, req: BackfillRequest = {}): Promise<BackfillReport> {
  requireConfig(cfg, 'MONGODB_URI', 'PDS_URL')
  const client = await MongoClient.connect(cfg.MONGODB_URI)
  try {
    const db = client.db(cfg.MONGODB_DB)
    let users: string[] | undefined
    if (req.handles?.length) {
      const names = req.handles.map((h) => h.replace(/^@/, ''))
      const found = await db.collection<{ _id: string; handle: string }>('@handles').find({ handle: { $in: names } }).toArray()
      const missing = names.filter((n) => !found.some((f) => f.handle === n))
      if (missing.length) throw new Error(`unknown AC handle(s): ${missing.map((m) => '@' + m).join(', ')}`)
      users = found.map((f) => f._id)
    }
    return await backfill({
      db,
      pdsUrl: cfg.PDS_URL,
      ctx: createWriterContext(cfg),
      log: log.child({ component: 'writer' }),
      concurrency: req.concurrency ?? cfg.WRITER_CONCURRENCY,
      guestUser: cfg.AC_GUEST_USER,
      dryRun: req.dryRun,
      only: req.only,
      users,
      anonymous: req.anonymous,
      onProgress: req.onProgress,
    })
  } finally {
    await client.close()
  }
}

/** Parses `--only painting,mood`. @throws Error naming an unknown kind. */
export function parseKinds(value: string): Kind[] {
  const kinds = value.split(',').map((k) => k.trim()).filter(Boolean)
  const bad = kinds.filter((k) => !(KINDS as readonly string[]).includes(k))
  if (bad.length) throw new Error(`unknown kind(s) ${bad.join(', ')}; expected ${KINDS.join(', ')}`)
  return kinds as Kind[]
}

/** Starts the ingest from FIREHOSE_URL (default PDS_URL) into the index. */
export async function runIngest(cfg: Config, log: Logger, db: IndexDb): Promise<Ingest> {
  requireConfig(cfg, 'firehoseUrl')
  const identity = new Identity({
    plcUrl: cfg.PLC_URL,
    handleResolverUrl: cfg.HANDLE_RESOLVER_URL,
    allowPrivateNetwork: cfg.ALLOW_PRIVATE_NETWORK,
    log: log.child({ component: 'identity' }),
  })
  return startIngest({ db, identity, service: cfg.firehoseUrl, trustedPds: cfg.trustedPds, log: log.child({ component: 'ingest' }) })
}

/** Starts the AppView on HOST:PORT; resolves to its base URL. */
export async function runAppView(cfg: Config, log: Logger, db: IndexDb) {
  const app = createAppView({
    db,
    log,
    publicUrl: cfg.AC_PUBLIC_URL.replace(/\/+$/, ''),
    blobCdnTemplate: cfg.BLOB_CDN_TEMPLATE,
    healthMaxLagSeconds: cfg.HEALTH_MAX_LAG_SECONDS,
  })
  const address = await app.listen({ host: cfg.HOST, port: cfg.PORT })
  return { app, url: address.replace('[::1]', 'localhost') }
}

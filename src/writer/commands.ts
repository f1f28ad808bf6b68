import { MongoClient, type Db } from 'mongodb'
import type { Kind } from '../collections/index.js'
import { UsageError } from '../usage.js'
import { requireConfig, type Config } from '../config.js'
import type { Logger } from '../log.js'
import { loadAccounts } from './accounts.js'
import { audit, type AuditReport } from './audit.js'
import { backfill, type BackfillOptions, type BackfillReport, type WriterOptions } from './backfill.js'
import { createWriterContext } from './context.js'
import { Ledger } from './ledger.js'
import { bskyAccount } from './bsky-account.js'
import { startLive, type Live, type LiveOptions } from './live.js'
import type { WriterStatus } from './status.js'
import { share, unshare, type ShareAs, type ShareReport } from './share.js'
import { wipe, type WipeReport } from './wipe.js'

/** What the operator asked for on the command line. */
export type WriterRequest = Pick<BackfillOptions, 'dryRun' | 'resume' | 'only' | 'anonymous' | 'since' | 'limit' | 'onProgress'> & {
  /** AC handles (with or without `@`); see {@link resolveUsers}. */
  handles?: string[]
  concurrency?: number
}

/**
 * Runs the writer backfill against MONGODB_URI and PDS_URL, recording the run in the ledger
 * under DATA_DIR (except in a dry run, which writes nothing anywhere).
 * @throws ConfigError when either is unset; Error when a handle is unknown.
 */
export async function runBackfill(cfg: Config, log: Logger, req: WriterRequest = {}): Promise<BackfillReport> {
  return withWriter(cfg, log, req, (opts) => backfill({ ...opts, dryRun: req.dryRun, resume: req.resume }), !req.dryRun)
}

/** Runs `writer audit` (and `--fix`). @see audit */
export async function runAudit(cfg: Config, log: Logger, req: WriterRequest & { fix?: boolean }): Promise<AuditReport> {
  return withWriter(cfg, log, req, (opts) => audit({ ...opts, fix: req.fix }), !!req.fix)
}

/**
 * Starts `writer live` (change streams plus reconcile passes every WRITER_RECONCILE_SECONDS).
 * Resolves once started; `writerStatus()` is its ledger's latest run (the dashboard's, and
 * `/status` on METRICS_PORT); `stop()` finishes the change in hand and closes everything.
 */
export async function runLive(
  cfg: Config,
  log: Logger,
  req: Pick<WriterRequest, 'concurrency'> & Pick<LiveOptions, 'onMirrored'> = {},
): Promise<Live & { writerStatus(): WriterStatus | null }> {
  requireConfig(cfg, 'MONGODB_URI', 'PDS_URL')
  let client = await MongoClient.connect(cfg.MONGODB_URI)
  const ledger = new Ledger(cfg.DATA_DIR)
  const live = await startLive({
    async reconnect() {
      await client.close(true).catch(() => {})
      client = await MongoClient.connect(cfg.MONGODB_URI)
      return client.db(cfg.MONGODB_DB)
    },
    ...baseOptions(cfg, log, client.db(cfg.MONGODB_DB), req.concurrency),
    ledger,
    reconcileSeconds: cfg.WRITER_RECONCILE_SECONDS,
    onMirrored: req.onMirrored,
  })
  return {
    status: () => live.status(),
    writerStatus: () => ledger.latestStatus(),
    reconciled: () => live.reconciled(),
    failure: live.failure,
    async stop() {
      await live.stop()
      ledger.close()
      await client.close()
    },
  }
}

/** Runs `writer wipe --handle H`. @throws Error when the handle has no PDS account. */
export async function runWipe(cfg: Config, log: Logger, handle: string, only?: Kind[]): Promise<WipeReport> {
  requireConfig(cfg, 'MONGODB_URI', 'PDS_URL')
  const client = await MongoClient.connect(cfg.MONGODB_URI)
  try {
    const db = client.db(cfg.MONGODB_DB)
    const [user] = await resolveUsers(db, [handle])
    const account = (await loadAccounts(db, log)).get(user)
    if (!account) throw new Error(`${handle} has no PDS account`)
    return await wipe({ db, pdsUrl: cfg.PDS_URL, account, guestUser: cfg.AC_GUEST_USER, only, log: log.child({ component: 'writer' }) })
  } finally {
    await client.close()
  }
}

/**
 * Runs `writer share <code> [--as owner|account] [--unshare]` (see {@link share} and
 * {@link unshare}) against MONGODB_URI and PDS_URL, with AC's own account when AC_BSKY_DID and
 * AC_BSKY_PASSWORD are set.
 * @throws ConfigError when MONGODB_URI or PDS_URL is unset; Error as share and unshare do.
 */
export async function runShare(cfg: Config, log: Logger, code: string, opts: { as?: ShareAs; unshare?: boolean } = {}): Promise<ShareReport> {
  requireConfig(cfg, 'MONGODB_URI', 'PDS_URL')
  const client = await MongoClient.connect(cfg.MONGODB_URI)
  try {
    const account = cfg.AC_BSKY_DID && cfg.AC_BSKY_PASSWORD ? await bskyAccount(cfg, log) : undefined
    const shareOpts = {
      db: client.db(cfg.MONGODB_DB),
      pdsUrl: cfg.PDS_URL,
      ctx: createWriterContext(cfg),
      log: log.child({ component: 'writer' }),
      guestUser: cfg.AC_GUEST_USER,
      account,
    }
    return await (opts.unshare ? unshare(code, shareOpts) : share(code, opts.as ?? 'owner', shareOpts))
  } finally {
    await client.close()
  }
}

/** What every writer command takes from configuration. */
function baseOptions(cfg: Config & { PDS_URL: string }, log: Logger, db: Db, concurrency?: number) {
  return {
    db,
    pdsUrl: cfg.PDS_URL,
    ctx: createWriterContext(cfg),
    log: log.child({ component: 'writer' }),
    concurrency: concurrency ?? cfg.WRITER_CONCURRENCY,
    guestUser: cfg.AC_GUEST_USER,
    retries: cfg.WRITER_RETRIES,
  }
}

async function withWriter<T>(cfg: Config, log: Logger, req: WriterRequest, run: (opts: WriterOptions) => Promise<T>, useLedger: boolean): Promise<T> {
  requireConfig(cfg, 'MONGODB_URI', 'PDS_URL')
  const client = await MongoClient.connect(cfg.MONGODB_URI)
  const ledger = useLedger ? new Ledger(cfg.DATA_DIR) : undefined
  try {
    const db = client.db(cfg.MONGODB_DB)
    return await run({
      ...baseOptions(cfg, log, db, req.concurrency),
      ledger,
      only: req.only,
      users: req.handles?.length ? await resolveUsers(db, req.handles) : undefined,
      anonymous: req.anonymous,
      since: req.since,
      limit: req.limit,
      onProgress: req.onProgress,
    })
  } finally {
    ledger?.close()
    await client.close()
  }
}

/**
 * `users._id` for each handle: an AC handle from `@handles` (`@jeffrey` or `jeffrey`), else a
 * PDS handle from `users.atproto.handle`, else a `users._id` itself (e.g. `art-guest`).
 * @throws UsageError listing the handles that match nobody.
 */
export async function resolveUsers(db: Db, handles: string[]): Promise<string[]> {
  const users: string[] = []
  const missing: string[] = []
  for (const raw of handles) {
    const name = raw.replace(/^@/, '')
    const byHandle = await db.collection<{ _id: string }>('@handles').findOne({ handle: name })
    const byPds = byHandle ? null : await db.collection<{ _id: string }>('users').findOne({ 'atproto.handle': name })
    const byId = byHandle || byPds ? null : await db.collection<{ _id: string }>('users').findOne({ _id: name })
    const found = byHandle ?? byPds ?? byId
    if (found) users.push(found._id)
    else missing.push(raw)
  }
  if (missing.length)
    throw new UsageError(`--user: no AC user is ${missing.join(', ')} (expected an AC handle such as @jeffrey, a PDS handle, or a users._id such as art-guest)`)
  return users
}

import fs from 'node:fs'
import path from 'node:path'
import { MongoClient, type Db } from 'mongodb'
import { mirrored } from './collections/index.js'
import type { Config } from './config.js'
import { describeIndex, isPostgresUrl, openIndex, pendingMigrations } from './db/index.js'
import { cursorRows } from './db/store.js'
import { Identity } from './identity.js'
import { FirehoseErrorFrame, subscribeRepos, wsUrl } from './ingest/subscription.js'
import type { Logger } from './log.js'
import { stripUserinfo } from './redact.js'
import { loadAccounts, type Account } from './writer/accounts.js'
import { createWriterContext } from './writer/context.js'
import { RepoClient } from './writer/repo.js'
import { readDoc } from './collections/index.js'

/** One check of `ac-appview doctor`. */
export interface Check {
  name: string
  /** `fail` blocks a deployment (exit 1); `warn` does not; `skip` when a check it needs failed. */
  status: 'ok' | 'warn' | 'fail' | 'skip'
  /** What was found (counts, versions, the error). */
  detail: string
  /** What to do about a `fail` or `warn`. */
  fix?: string
}

/** How long a network check may take before it counts as unreachable. */
const TIMEOUT_MS = 5000
/** How long a connected firehose host may stay silent before it counts as answering (a quiet live tail). */
const QUIET_MS = 1000
/** Accounts logged into (no writes) and paintings whose PNG is checked. */
const SAMPLE = 3
/** Free space below which DATA_DIR is a warning. */
const MIN_FREE_BYTES = 1024 ** 3

/**
 * `ac-appview doctor`: checks every dependency of a deployment before anything is written, in
 * order, each passed or failed with what to do: MongoDB and its change streams, AC's collections,
 * users with and without PDS accounts, the guest account, the PDS, logins for a sample of accounts
 * (createSession only: nothing is written), the PDS's rate limits, media for a sample of paintings,
 * PLC and handle resolution, each firehose host and the stored cursor, DATA_DIR, and the index's
 * migrations. Checks that need a failed one are skipped. Never throws: every failure is a check.
 */
export async function runDoctor(cfg: Config, log: Logger): Promise<Check[]> {
  const checks: Check[] = []
  const add = (c: Check) => void checks.push(c)
  const mongo = await checkMongo(cfg, add)
  try {
    const accounts = mongo ? await checkAccounts(mongo.db, cfg, log, add) : skip(add, ['users and PDS accounts', 'guest account'], 'MongoDB')
    const pds = await checkPds(cfg, add)
    if (pds && accounts) await checkLogins(cfg, [...accounts.values()], log, add)
    else skip(add, ['PDS logins'], pds ? 'MongoDB' : 'the PDS')
    if (mongo) await checkMedia(mongo.db, cfg, add)
    else skip(add, ['media'], 'MongoDB')
    await checkIdentity(cfg, accounts ? (accounts.get(cfg.AC_GUEST_USER) ?? [...accounts.values()][0]) : undefined, log, add)
  } finally {
    await mongo?.client.close()
  }
  await checkFirehose(cfg, add)
  checkDataDir(cfg, add)
  await checkIndex(cfg, add)
  return checks
}

function skip(add: (c: Check) => void, names: string[], needs: string): undefined {
  for (const name of names) add({ name, status: 'skip', detail: `needs ${needs}` })
  return undefined
}

async function checkMongo(cfg: Config, add: (c: Check) => void): Promise<{ client: MongoClient; db: Db } | undefined> {
  if (!cfg.MONGODB_URI) {
    add({ name: 'MongoDB', status: 'fail', detail: 'MONGODB_URI is not set', fix: "set MONGODB_URI to AC's MongoDB (mongodb:// or mongodb+srv://)" })
    skip(add, ['change streams', "AC's collections"], 'MongoDB')
    return undefined
  }
  let client: MongoClient
  try {
    client = await MongoClient.connect(cfg.MONGODB_URI, { serverSelectionTimeoutMS: TIMEOUT_MS, connectTimeoutMS: TIMEOUT_MS })
    const info = await client.db(cfg.MONGODB_DB).command({ buildInfo: 1 })
    add({ name: 'MongoDB', status: 'ok', detail: `connected, server ${info.version}` })
  } catch (err) {
    add({ name: 'MongoDB', status: 'fail', detail: (err as Error).message, fix: 'check MONGODB_URI (host, port, credentials, TLS) and that the server is up' })
    skip(add, ['change streams', "AC's collections"], 'MongoDB')
    return undefined
  }
  const db = client.db(cfg.MONGODB_DB)
  try {
    const stream = db.watch([], { maxAwaitTimeMS: 100 })
    try {
      await stream.tryNext()
    } finally {
      await stream.close()
    }
    add({ name: 'change streams', status: 'ok', detail: 'a change stream opened on the database' })
  } catch (err) {
    add({
      name: 'change streams',
      status: 'fail',
      detail: (err as Error).message,
      fix: '`writer live` needs change streams: run MongoDB as a replica set (a one-node replica set will do) and grant changeStream and find on the database',
    })
  }
  const names = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name))
  const counts = await Promise.all(
    mirrored.map(async (c) => `${c.mongo} ${names.has(c.mongo) ? await db.collection(c.mongo).estimatedDocumentCount() : 'missing'}`),
  )
  const missing = [...mirrored.map((c) => c.mongo), 'users', '@handles'].filter((n) => !names.has(n))
  if (missing.length === mirrored.length + 2)
    add({
      name: "AC's collections",
      status: 'fail',
      detail: `database ${cfg.MONGODB_DB} has none of AC's collections`,
      fix: `check MONGODB_DB (AC's database is "aesthetic")`,
    })
  else if (missing.length)
    add({
      name: "AC's collections",
      status: 'warn',
      detail: `${counts.join(', ')}; missing: ${missing.join(', ')}`,
      fix: 'a missing collection is read as empty; check MONGODB_DB if that is unexpected',
    })
  else add({ name: "AC's collections", status: 'ok', detail: counts.join(', ') })
  return { client, db }
}

async function checkAccounts(db: Db, cfg: Config, log: Logger, add: (c: Check) => void): Promise<Map<string, Account> | undefined> {
  const accounts = await loadAccounts(db, log)
  const users = await db.collection('users').estimatedDocumentCount()
  if (accounts.size === 0)
    add({
      name: 'users and PDS accounts',
      status: 'fail',
      detail: `${users} users, none with a PDS account (users.atproto.did and password)`,
      fix: "AC's users get PDS accounts from AC's own signup; check MONGODB_DB",
    })
  else
    add({
      name: 'users and PDS accounts',
      status: 'ok',
      detail: `${users} users, ${accounts.size} with a PDS account, ${Math.max(0, users - accounts.size)} without (their items are skipped)`,
    })
  const anonymous = (
    await Promise.all(mirrored.filter((c) => c.anonymous).map((c) => db.collection(c.mongo).countDocuments({ user: { $exists: false } })))
  ).reduce((a, b) => a + b, 0)
  const guest = accounts.get(cfg.AC_GUEST_USER)
  if (guest) add({ name: 'guest account', status: 'ok', detail: `${cfg.AC_GUEST_USER} is ${guest.handle ?? guest.did}; ${anonymous} anonymous items` })
  else
    add({
      name: 'guest account',
      status: anonymous ? 'fail' : 'warn',
      detail: `no users document ${cfg.AC_GUEST_USER} with a PDS account; ${anonymous} anonymous items would be skipped`,
      fix: `create the guest account's users document (_id "${cfg.AC_GUEST_USER}", atproto {did, handle, password}) or set AC_GUEST_USER`,
    })
  return accounts.size ? accounts : undefined
}

async function checkPds(cfg: Config, add: (c: Check) => void): Promise<boolean> {
  if (!cfg.PDS_URL) {
    add({ name: 'PDS', status: 'fail', detail: 'PDS_URL is not set', fix: "set PDS_URL to AC's PDS (https://…)" })
    return false
  }
  try {
    const res = await fetch(new URL('/xrpc/com.atproto.server.describeServer', cfg.PDS_URL), { redirect: 'error', signal: AbortSignal.timeout(TIMEOUT_MS) })
    if (!res.ok) throw new Error(`describeServer answered HTTP ${res.status}`)
    const body = (await res.json()) as { did?: string; availableUserDomains?: string[] }
    add({ name: 'PDS', status: 'ok', detail: `${body.did ?? 'unknown DID'}, handles ${body.availableUserDomains?.join(' ') ?? '?'}` })
    return true
  } catch (err) {
    add({
      name: 'PDS',
      status: 'fail',
      detail: `${(err as Error).message}${(err as Error).cause ? `: ${((err as Error).cause as Error).message}` : ''}`,
      fix: 'check PDS_URL and that the PDS is up (GET /xrpc/com.atproto.server.describeServer)',
    })
    return false
  }
}

/** Logs in as a sample of accounts (the guest first): createSession only, nothing written. Also reads the rate-limit headers. */
async function checkLogins(cfg: Config, accounts: Account[], log: Logger, add: (c: Check) => void): Promise<void> {
  const guest = accounts.find((a) => a.user === cfg.AC_GUEST_USER)
  const sample = [...(guest ? [guest] : []), ...accounts.filter((a) => a !== guest).sort(() => Math.random() - 0.5)].slice(0, SAMPLE)
  const failed: string[] = []
  for (const account of sample) {
    try {
      await RepoClient.login(cfg.PDS_URL!, account, log, { retries: 0 })
    } catch (err) {
      failed.push(`${account.handle ?? account.did}: ${(err as Error).message}`)
    }
  }
  if (failed.length)
    add({
      name: 'PDS logins',
      status: 'fail',
      detail: `${failed.length} of ${sample.length} sampled accounts could not log in: ${failed.join('; ')}`,
      fix: "the password in users.atproto.password must be the account's PDS password; reset it on the PDS (admin) and in MongoDB",
    })
  else add({ name: 'PDS logins', status: 'ok', detail: `${sample.length} sampled accounts logged in (${sample.map((a) => a.handle ?? a.did).join(', ')})` })

  const res = await fetch(new URL('/xrpc/com.atproto.server.describeServer', cfg.PDS_URL), { signal: AbortSignal.timeout(TIMEOUT_MS) }).catch(() => undefined)
  const policy = res?.headers.get('ratelimit-policy')
  if (policy)
    add({
      name: 'PDS rate limits',
      status: 'ok',
      detail: `ratelimit-policy ${policy}, limit ${res!.headers.get('ratelimit-limit')}; the writer paces itself by them`,
    })
  else
    add({
      name: 'PDS rate limits',
      status: 'warn',
      detail: 'the PDS sends no ratelimit-* headers: its rate limits are off',
      fix: 'enable them on the PDS (PDS_RATE_LIMITS_ENABLED=true) so one client cannot exhaust it; the writer paces itself by the headers',
    })
}

/** HEAD on the PNG of a few live paintings, with the writer's own storage rules. */
async function checkMedia(db: Db, cfg: Config, add: (c: Check) => void): Promise<void> {
  const painting = mirrored.find((c) => c.kind === 'painting')!
  const live = { nuked: { $ne: true } }
  const count = await db.collection(painting.mongo).countDocuments(live)
  // Spread over the collection by skips (not `$sample`: some MongoDB-protocol servers fail its random sort).
  const docs = (
    await Promise.all(
      Array.from({ length: Math.min(SAMPLE, count) }, (_, i) =>
        db
          .collection(painting.mongo)
          .find(live)
          .skip(Math.floor(((i + Math.random()) * count) / SAMPLE))
          .limit(1)
          .next(),
      ),
    )
  ).filter((d) => d !== null)
  if (!docs.length) return void add({ name: 'media', status: 'warn', detail: 'no painting to check', fix: 'nothing to do unless paintings are expected' })
  const ctx = createWriterContext(cfg)
  const results: string[] = []
  let found = 0
  for (const doc of docs) {
    try {
      const item = readDoc(painting, doc)
      const made = await painting.blobs[0].make(item, { ...ctx, thumbnail: async (image) => ({ bytes: image, mimeType: 'image/png' }) })
      if (made) found++
      results.push(`#${item.fields.code} ok`)
    } catch (err) {
      results.push(`${String(doc._id)}: ${(err as Error).message}`)
    }
  }
  if (found === docs.length) add({ name: 'media', status: 'ok', detail: `${found} sampled painting PNGs fetched from ${cfg.AC_STORAGE_URL}` })
  else
    add({
      name: 'media',
      status: found ? 'warn' : 'fail',
      detail: `${found} of ${docs.length} sampled PNGs fetched: ${results.join('; ')}`,
      fix: "check AC_STORAGE_URL ({bucket} is filled with each document's bucket) and that the storage answers GET",
    })
}

/** Resolves an account's DID on PLC_URL and its handle back to the DID, as the ingest does. */
async function checkIdentity(cfg: Config, account: Account | undefined, log: Logger, add: (c: Check) => void): Promise<void> {
  if (!account) return void skip(add, ['PLC and handles'], 'an account in MongoDB')
  const identity = new Identity({ plcUrl: cfg.PLC_URL, handleResolverUrl: cfg.HANDLE_RESOLVER_URL, allowPrivateNetwork: cfg.ALLOW_PRIVATE_NETWORK, log })
  try {
    const data = await identity.resolver.did.resolveAtprotoData(account.did, true)
    const back = await identity.resolveHandle(data.handle)
    if (back === account.did)
      add({ name: 'PLC and handles', status: 'ok', detail: `${account.did} resolves on ${cfg.PLC_URL} to ${data.handle}, which resolves back` })
    else
      add({
        name: 'PLC and handles',
        status: 'fail',
        detail: `${account.did}'s handle ${data.handle} resolves to ${back ?? 'nothing'}`,
        fix: `check handle resolution (DNS _atproto TXT or https://<handle>/.well-known/atproto-did${cfg.HANDLE_RESOLVER_URL ? `, or HANDLE_RESOLVER_URL ${cfg.HANDLE_RESOLVER_URL}` : ''})`,
      })
  } catch (err) {
    add({
      name: 'PLC and handles',
      status: 'fail',
      detail: `${account.did} did not resolve: ${(err as Error).message}`,
      fix: `check PLC_URL (${cfg.PLC_URL}) and that the DID is registered there`,
    })
  }
}

/** Connects to each firehose host from the stored cursor (if any) and reads its first answer. */
async function checkFirehose(cfg: Config, add: (c: Check) => void): Promise<void> {
  if (!cfg.firehoseUrls.length)
    return void add({ name: 'firehose', status: 'fail', detail: 'neither FIREHOSE_URL nor PDS_URL is set', fix: 'set FIREHOSE_URL (or PDS_URL)' })
  const cursors = await storedCursors(cfg)
  for (const url of cfg.firehoseUrls) {
    const service = wsUrl(url)
    const host = new URL(service).host
    const cursor = cursors.get(service)
    const name = `firehose ${host}`
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS)
    let connected = false
    try {
      const messages = subscribeRepos({
        service,
        cursor: () => cursor,
        signal: abort.signal,
        heartbeatMs: TIMEOUT_MS,
        maxReconnectSeconds: 1,
        onConnect: () => {
          connected = true
          // A host answers a bad cursor at once; a quiet live tail sends nothing: a second is enough.
          setTimeout(() => abort.abort(), QUIET_MS).unref()
        },
        onDisconnect: () => {},
        onReconnect: (error) => abort.abort(error),
      })
      const first = await messages.next()
      abort.abort()
      const info = first.value?.type === '#info' ? String(first.value.body.name) : undefined
      if (info === 'OutdatedCursor')
        add({
          name,
          status: 'warn',
          detail: `stored cursor ${cursor} is older than the host's window`,
          fix: 'nothing to do: the ingest backfills from the host on start',
        })
      else
        add({
          name,
          status: 'ok',
          detail: `connected${cursor === undefined ? ' (no stored cursor: the first start backfills)' : `, stored cursor ${cursor} inside the window`}`,
        })
    } catch (err) {
      if (err instanceof FirehoseErrorFrame && err.code === 'FutureCursor')
        add({
          name,
          status: 'fail',
          detail: `stored cursor ${cursor} is ahead of the host (it was reset or replaced)`,
          fix: 'nothing to do by hand: the ingest drops the cursor and backfills; check FIREHOSE_URL names the right host',
        })
      else if (connected)
        add({
          name,
          status: 'ok',
          detail: `connected${cursor === undefined ? ' (no stored cursor: the first start backfills)' : `, stored cursor ${cursor} accepted`}`,
        })
      else
        add({
          name,
          status: 'fail',
          detail: `cannot connect: ${(abort.signal.reason as Error)?.message ?? (err as Error).message}`,
          fix: 'check FIREHOSE_URL (ws(s):// or http(s):// of a PDS or relay) and that the host is up',
        })
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Cursors stored in the index, by service, when the index exists. */
async function storedCursors(cfg: Config): Promise<Map<string, number>> {
  if (!isPostgresUrl(cfg.index) && !fs.existsSync(cfg.index)) return new Map()
  const db = openIndex(cfg.index)
  try {
    const rows = await cursorRows(db)
    return new Map(rows.filter((r) => r.seq >= 0).map((r) => [r.service, r.seq]))
  } catch {
    return new Map() // an index from before its migrations: checkIndex reports it
  } finally {
    await db.destroy()
  }
}

function checkDataDir(cfg: Config, add: (c: Check) => void): void {
  const dir = path.resolve(cfg.DATA_DIR)
  try {
    fs.mkdirSync(dir, { recursive: true })
    const probe = path.join(dir, `.doctor-${process.pid}`)
    fs.writeFileSync(probe, 'ok')
    fs.rmSync(probe)
    const stat = fs.statfsSync(dir)
    const free = stat.bavail * stat.bsize
    const gib = (free / 1024 ** 3).toFixed(1)
    if (free < MIN_FREE_BYTES)
      add({
        name: 'DATA_DIR',
        status: 'warn',
        detail: `${dir} is writable, ${gib} GiB free`,
        fix: 'free space or move DATA_DIR: the ledger and the index grow with AC',
      })
    else add({ name: 'DATA_DIR', status: 'ok', detail: `${dir} is writable, ${gib} GiB free` })
  } catch (err) {
    add({
      name: 'DATA_DIR',
      status: 'fail',
      detail: `${dir}: ${(err as Error).message}`,
      fix: 'set DATA_DIR to a directory this user can write (the writer keeps its ledger there: back it up)',
    })
  }
}

async function checkIndex(cfg: Config, add: (c: Check) => void): Promise<void> {
  const shown = describeIndex(cfg.index)
  if (!isPostgresUrl(cfg.index) && !fs.existsSync(cfg.index))
    return void add({ name: 'index migrations', status: 'ok', detail: `no index yet at ${shown}: created and migrated on first start` })
  const db = openIndex(cfg.index)
  try {
    const pending = await pendingMigrations(db)
    if (pending.length)
      add({
        name: 'index migrations',
        status: 'fail',
        detail: `${pending.length} pending: ${pending.join(', ')}`,
        fix: 'run `ac-appview migrate` (serve, ingest and start also migrate on start)',
      })
    else add({ name: 'index migrations', status: 'ok', detail: `${shown} is current` })
  } catch (err) {
    add({
      name: 'index migrations',
      status: 'fail',
      detail: stripUserinfo((err as Error).message),
      fix: `check ${isPostgresUrl(cfg.index) ? 'INDEX_DATABASE_URL' : 'INDEX_DB_PATH'} (${shown}); the index can be rebuilt from the network with \`ac-appview ingest --backfill\``,
    })
  } finally {
    await db.destroy()
  }
}

/** Whether any check blocks the deployment. */
export function blocking(checks: Check[]): boolean {
  return checks.some((c) => c.status === 'fail')
}

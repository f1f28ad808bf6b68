import os from 'node:os'
import { isValidDid } from '@atproto/syntax'
import { z } from 'zod'

/**
 * Every environment variable ac-appview reads, validated once at start-up.
 * The README's configuration table lists the same variables; keep the two in step.
 */
const bool = z.enum(['true', 'false', '1', '0', '']).transform((v) => v === 'true' || v === '1')

const url = z.url({ protocol: /^https?$/ })
const wsUrl = z.url({ protocol: /^(https?|wss?)$/ })
/** A PostgreSQL connection URL (libpq's form, as `pg` reads it: `postgres://user:pass@host:5432/db?sslmode=require`). */
const postgresUrl = z.string().regex(/^postgres(ql)?:\/\/[^\s]+$/i, 'must be a postgres:// or postgresql:// URL')

/**
 * The AppView's bounds by default (issue 15): memory of its two caches in bytes, connections in
 * total and per client IP, and how long a client may take to send its request headers. `serve`
 * takes them from configuration; `createAppView` falls back on them.
 */
export const APPVIEW_LIMITS = {
  viewCacheMaxBytes: 128 * 1024 * 1024,
  responseCacheMaxBytes: 64 * 1024 * 1024,
  maxConnections: 1000,
  maxConnectionsPerClient: 64,
  headersTimeoutMs: 10_000,
}

const did = z.string().refine((v): boolean => isValidDid(v), 'must be a DID (did:plc:… or did:web:…)')

const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
)

const schema = z.object({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATA_DIR: z.string().min(1).default('.data'),

  // Writer: AC's MongoDB and PDS
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://')
    .optional(),
  MONGODB_DB: z.string().min(1).default('aesthetic'),
  PDS_URL: url.optional(),
  AC_PUBLIC_URL: url.default('https://aesthetic.computer'),
  AC_STORAGE_URL: z
    .string()
    .refine((v) => v.includes('{bucket}'), 'must contain {bucket}')
    .default('https://{bucket}.sfo3.digitaloceanspaces.com'),
  AC_GUEST_USER: z.string().min(1).default('art-guest'),
  WRITER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  MEDIA_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(64 * 1024 * 1024),
  MEDIA_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  WRITER_RECONCILE_SECONDS: z.coerce.number().int().min(0).default(300),
  WRITER_RETRIES: z.coerce.number().int().min(0).max(20).default(8),
  WRITER_MEDIA_THREADS: z.coerce.number().int().min(0).max(64).default(os.availableParallelism()),

  // Ingest
  FIREHOSE_URL: list.pipe(z.array(wsUrl).min(1)).optional(),
  INDEX_DB_PATH: z.string().min(1).optional(),
  INDEX_DATABASE_URL: postgresUrl.optional(),
  INDEX_READ_URL: postgresUrl.optional(),
  PLC_URL: url.default('https://plc.directory'),
  HANDLE_RESOLVER_URL: url.optional(),
  TRUSTED_PDS: list.optional(),
  TRUSTED_RELAYS: list.pipe(z.array(wsUrl)).optional(),
  ALLOW_PRIVATE_NETWORK: bool.default(false),
  INGEST_VERIFY: bool.default(true),
  INGEST_VERIFY_THREADS: z.coerce.number().int().min(0).max(64).default(os.availableParallelism()),
  INGEST_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(500),
  INGEST_WATCHDOG_SECONDS: z.coerce.number().int().min(1).default(60),
  INGEST_BACKFILL_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  INGEST_POSTS: bool.default(true),
  INGEST_FAILOVER_SECONDS: z.coerce.number().int().min(2).max(600).default(10),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  ADMIN_PASSWORD: z.string().min(12, 'must be at least 12 characters').optional(),

  // AppView
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  BLOB_CDN_TEMPLATE: z
    .string()
    .refine((v) => v.includes('{did}') && v.includes('{cid}'), 'must contain {did} and {cid}')
    .optional(),
  HEALTH_MAX_LAG_SECONDS: z.coerce.number().int().min(1).default(300),
  CORS_ORIGINS: list.optional(),
  RATE_LIMIT_MAX: z.coerce.number().int().min(0).default(3000),
  RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(1000).default(60_000),
  TRUST_PROXY: list.optional(),
  DASHBOARD: bool.default(true),
  VIEW_CACHE_SIZE: z.coerce.number().int().min(0).default(50_000),
  VIEW_CACHE_MAX_BYTES: z.coerce.number().int().min(0).default(APPVIEW_LIMITS.viewCacheMaxBytes),
  RESPONSE_CACHE_SIZE: z.coerce.number().int().min(0).default(10_000),
  RESPONSE_CACHE_MAX_BYTES: z.coerce.number().int().min(0).default(APPVIEW_LIMITS.responseCacheMaxBytes),
  CURSOR_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  VIEW_URL_ORIGINS: list.pipe(z.array(z.string().regex(/^(https:\/\/\S+|\*)$/, 'each origin must be https://host, https://*.host or *'))).optional(),
  MAX_CONNECTIONS: z.coerce.number().int().min(1).default(APPVIEW_LIMITS.maxConnections),
  MAX_CONNECTIONS_PER_CLIENT: z.coerce.number().int().min(1).default(APPVIEW_LIMITS.maxConnectionsPerClient),
  HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(APPVIEW_LIMITS.headersTimeoutMs),
  WRITER_STATUS_URL: url.optional(),

  // Feed generator, and AC's own account on Bluesky (feed publisher, `writer share --as account`)
  FEEDGEN_HOSTNAME: z
    .string()
    .regex(/^[a-z0-9.-]+(:\d{1,5})?$/i, 'must be a host name with an optional port, without scheme or path')
    .optional(),
  FEEDGEN_SERVICE_DID: did.optional(),
  AC_BSKY_DID: did.optional(),
  AC_BSKY_PASSWORD: z.string().min(1).optional(),
  AC_BSKY_PDS_URL: url.optional(),
})

export type Env = z.infer<typeof schema>

/** Resolved configuration: the validated environment plus derived values. */
export interface Config extends Env {
  indexDbPath: string
  /**
   * Where the index is: INDEX_DATABASE_URL (PostgreSQL) when set, else the SQLite file
   * {@link indexDbPath}. Never shown as is (it may hold a password): see describeIndex.
   */
  index: string
  firehoseUrl: string | undefined
  /** Every firehose host (FIREHOSE_URL is a comma-separated list; default PDS_URL). */
  firehoseUrls: string[]
  trustedPds: string[]
  /** Origins (http form) of the relays whose #identity, #account and #sync events are believed. */
  trustedRelays: string[]
  /** Origins allowed by CORS: exact origins, `*.host` wildcards for subdomains, or `*` for any. */
  corsOrigins: string[]
  /** Origins whose https URLs records may carry into views (same patterns as CORS). */
  viewUrlOrigins: string[]
  /** The feed generator the AppView serves; undefined when FEEDGEN_HOSTNAME and FEEDGEN_SERVICE_DID are unset. */
  feedgen: FeedgenConfig | undefined
}

/** The feed generator's identity (issue 10; ATProto feed generator spec). */
export interface FeedgenConfig {
  /** FEEDGEN_SERVICE_DID, else `did:web:<FEEDGEN_HOSTNAME>` (a port's `:` percent-encoded). */
  serviceDid: string
  /**
   * `https://<FEEDGEN_HOSTNAME>` (`http` for localhost, which did:web resolvers allow in dev):
   * the endpoint the did:web document names. Undefined without FEEDGEN_HOSTNAME.
   */
  endpoint: string | undefined
  /** AC_BSKY_DID: the repo holding the `app.bsky.feed.generator` records, named by the feeds' AT-URIs. */
  publisherDid: string
}

export class ConfigError extends Error {}

/**
 * Reads and validates configuration from `env` (default `process.env`).
 * @throws ConfigError naming each bad variable and why, e.g. `PORT: Too big: expected number to be <=65535`.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]))
  const parsed = schema.safeParse(input)
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`)
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`)
  }
  const e = parsed.data
  if (e.INDEX_READ_URL && !e.INDEX_DATABASE_URL)
    throw new ConfigError('invalid configuration:\n  INDEX_READ_URL: needs INDEX_DATABASE_URL (a read replica of that PostgreSQL database)')
  const indexDbPath = e.INDEX_DB_PATH ?? `${e.DATA_DIR}/index.sqlite`
  return {
    ...e,
    indexDbPath,
    index: e.INDEX_DATABASE_URL ?? indexDbPath,
    firehoseUrl: e.FIREHOSE_URL?.[0] ?? e.PDS_URL,
    firehoseUrls: e.FIREHOSE_URL ?? (e.PDS_URL ? [e.PDS_URL] : []),
    trustedPds: (e.TRUSTED_PDS ?? (e.PDS_URL ? [e.PDS_URL] : [])).map((u) => new URL(u).origin),
    trustedRelays: (e.TRUSTED_RELAYS ?? []).map(httpOrigin),
    corsOrigins: e.CORS_ORIGINS ?? defaultCorsOrigins(e.AC_PUBLIC_URL, e.ALLOW_PRIVATE_NETWORK),
    viewUrlOrigins: e.VIEW_URL_ORIGINS ?? acOrigins(e.AC_PUBLIC_URL),
    feedgen: feedgenConfig(e),
  }
}

/**
 * The feed generator's identity from FEEDGEN_HOSTNAME, FEEDGEN_SERVICE_DID and AC_BSKY_DID.
 * @throws ConfigError when the feed generator is configured without AC_BSKY_DID.
 */
function feedgenConfig(e: Env): FeedgenConfig | undefined {
  const host = e.FEEDGEN_HOSTNAME
  if (!host && !e.FEEDGEN_SERVICE_DID) return undefined
  if (!e.AC_BSKY_DID)
    throw new ConfigError(
      "invalid configuration:\n  AC_BSKY_DID: must be set with FEEDGEN_HOSTNAME or FEEDGEN_SERVICE_DID (the feeds' AT-URIs name the account that publishes them)",
    )
  return {
    serviceDid: e.FEEDGEN_SERVICE_DID ?? `did:web:${encodeURIComponent(host!.toLowerCase())}`,
    endpoint: host ? `${/^localhost(:|$)/i.test(host) ? 'http' : 'https'}://${host.toLowerCase()}` : undefined,
    publisherDid: e.AC_BSKY_DID,
  }
}

/** The http(s) origin of a host given as http(s) or ws(s) (`wss://relay.example/` → `https://relay.example`). */
export function httpOrigin(url: string): string {
  return new URL(url.replace(/^ws(s?):/, 'http$1:')).origin
}

/** AC's site and its subdomains: `https://aesthetic.computer`, `https://*.aesthetic.computer`. */
export function acOrigins(publicUrl: string): string[] {
  const site = new URL(publicUrl)
  return [site.origin, `${site.protocol}//*.${site.host}`]
}

/**
 * AC's site and its subdomains (`https://aesthetic.computer`, `https://*.aesthetic.computer`);
 * in dev and tests (ALLOW_PRIVATE_NETWORK) also any port on localhost and 127.0.0.1.
 */
function defaultCorsOrigins(publicUrl: string, dev: boolean): string[] {
  const origins = acOrigins(publicUrl)
  return dev ? [...origins, 'http://localhost:*', 'http://127.0.0.1:*'] : origins
}

/** Throws ConfigError unless each named variable is set; used by commands that need them. */
export function requireConfig<K extends keyof Config>(cfg: Config, ...keys: K[]): asserts cfg is Config & { [P in K]-?: NonNullable<Config[P]> } {
  const missing = keys.filter((k) => cfg[k] === undefined)
  if (missing.length) throw new ConfigError(`missing configuration: ${missing.join(', ')} must be set`)
}

import { cborToLexRecord, readCarWithRoot, verifyRepo } from '@atproto/repo'
import PQueue from 'p-queue'
import { recordRepoFailure } from '../db/store.js'
import type { Logger } from '../log.js'
import { retry } from '../retry.js'
import type { Identity } from '../identity.js'
import { POST_COLLECTION } from '../feeds/definitions.js'
import { OWN_PDS, collectionOf, type Indexer, type SnapshotOp } from './indexer.js'
import type { PostIndex } from './posts.js'

export interface RepoFetcherOptions {
  indexer: Indexer
  identity: Identity
  log: Logger
  /** Verify each repo's commit signature (its MST is always checked). */
  verify: boolean
  /** getRepo requests at once per PDS host. */
  concurrencyPerHost: number
  /** Attempts per repo before it is marked failed (operators see the error). Default 3. */
  maxAttempts?: number
  /** Largest repo CAR fetched, in bytes. Default 512 MiB. */
  maxRepoBytes?: number
  /** The post filter when the ingest indexes posts about AC: a snapshot brings the repo's posts up to date too. */
  posts?: PostIndex
}

/** DID resolutions at once during a backfill (PLC and handle lookups, across all hosts). */
const RESOLVE_CONCURRENCY = 16
/** Fetches of one repo whose snapshot turned out older than live commits already applied, before giving up. */
const STALE_TRIES = 3

/**
 * Backfills one repo: resolves its DID (at most {@link RESOLVE_CONCURRENCY} at once), fetches it
 * with `com.atproto.sync.getRepo` from its own PDS (`concurrencyPerHost` at once per PDS),
 * verifies it (commit signature against the DID's signing key, MST structure and block hashes, by
 * `@atproto/repo`) and makes the index match it (Indexer.applySnapshot): its AC records, and with
 * `posts` the posts the post filter keeps (a snapshot supersedes the commits it contains, so a
 * post it skipped would be lost). A snapshot older than
 * live commits already applied is fetched again; a failure is recorded on the repo's row and
 * retried with backoff until `maxAttempts`, when the repo is marked failed.
 */
export class RepoFetcher {
  /** Fetch queues by PDS origin. */
  private readonly queues = new Map<string, PQueue>()
  private readonly resolving = new PQueue({ concurrency: RESOLVE_CONCURRENCY })
  private readonly stopping = new AbortController()
  /** Repos being backfilled (queued, fetched, or waiting to retry). */
  private readonly inFlight = new Set<Promise<void>>()

  constructor(private readonly opts: RepoFetcherOptions) {}

  /** Backfills `did` as listed or streamed by `source`; never rejects (failures are recorded). */
  backfill(did: string, source: string): Promise<void> {
    const done = this.attempt(did, source).finally(() => this.inFlight.delete(done))
    this.inFlight.add(done)
    return done
  }

  /** Resolves when no repo is being backfilled. */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.all(this.inFlight)
  }

  /** Queued repos and waits between attempts end at once; resolves when the fetches in flight are done. */
  async stop(): Promise<void> {
    this.stopping.abort()
    await this.idle()
  }

  private async attempt(did: string, source: string): Promise<void> {
    const { log } = this.opts
    await retry(() => this.fetchUntilCurrent(did, source), {
      minMs: 1000,
      maxMs: 60_000,
      signal: this.stopping.signal,
      onFailure: async (err) => {
        const { attempts, state } = await recordRepoFailure(this.opts.indexer.db, did, err.message, this.opts.maxAttempts ?? 3)
        log.warn({ did, attempts, state, err: err.message }, 'repo backfill failed')
        return state === 'pending'
      },
    }).catch(() => {}) // marked failed: operators see it on the repo row and in /xrpc/_health
  }

  private async fetchUntilCurrent(did: string, source: string): Promise<void> {
    for (let i = 0; i < STALE_TRIES; i++) {
      if (this.stopping.signal.aborted || (await this.fetchAndApply(did, source)) !== 'stale') return
    }
    throw new Error('repo kept changing while being fetched')
  }

  private async fetchAndApply(did: string, source: string): Promise<'stale' | 'ok'> {
    const { indexer } = this.opts
    const stopped = this.stopping.signal
    const actor = await this.resolving.add(async () => (stopped.aborted ? undefined : indexer.actorOps(did, { from: OWN_PDS, refresh: true }))) // fetched from that PDS below
    if (!actor) return 'ok' // stopped while queued
    const { pds, trusted } = actor[0]?.type === 'actor' ? actor[0] : { pds: null, trusted: false }
    if (!pds) throw new Error('DID has no PDS (could not resolve it)')
    return this.queueFor(pds).add(async () => {
      if (stopped.aborted) return 'ok'
      this.opts.posts?.expectAuthor(did)
      const bytes = await fetchRepo(pds, did, this.opts.maxRepoBytes ?? 512 * 1024 * 1024)
      const { rev, ops } = await this.verifiedRecords(did, bytes, trusted)
      const result = await indexer.applySnapshot(did, source, rev, ops, actor, { posts: !!this.opts.posts })
      if (result !== 'stale') this.opts.log.debug({ did, rev, ...result }, 'repo backfilled')
      return result === 'stale' ? 'stale' : 'ok'
    })
  }

  /**
   * Verifies a repo CAR and returns its AC records, and the posts the post filter keeps (`trusted`:
   * the account is on TRUSTED_PDS), as index operations.
   * @throws RepoVerificationError when the signature (after one key refresh) or the MST is wrong.
   */
  private async verifiedRecords(did: string, bytes: Uint8Array, trusted: boolean): Promise<{ rev: string; ops: SnapshotOp[] }> {
    const car = await readCarWithRoot(bytes)
    const verified = this.opts.verify
      ? await this.opts.identity.withSigningKey(did, (key) => verifyRepo(car.blocks, car.root, did, key))
      : await verifyRepo(car.blocks, car.root, did)
    const { rev } = verified.commit
    const ops: SnapshotOp[] = []
    for (const c of verified.creates) {
      const block = car.blocks.get(c.cid)
      if (!block) continue
      const col = collectionOf(c.collection)
      if (col) ops.push(this.opts.indexer.recordOp(col, did, c.rkey, c.cid.toString(), rev, cborToLexRecord(block)))
      else if (c.collection === POST_COLLECTION && this.opts.posts) {
        const post = await this.opts.posts.snapshotOp(did, c.rkey, c.cid.toString(), rev, block, trusted)
        if (post) ops.push(post)
      }
    }
    return { rev, ops }
  }

  /** The fetch queue of one PDS host (origin). */
  private queueFor(host: string): PQueue {
    let q = this.queues.get(host)
    if (!q) this.queues.set(host, (q = new PQueue({ concurrency: this.opts.concurrencyPerHost })))
    return q
  }
}

/**
 * `com.atproto.sync.getRepo` from the repo's PDS: the whole repo as CAR bytes.
 * @throws Error with the host's error name (RepoNotFound, RepoTakendown…) or when larger than `maxBytes`.
 */
async function fetchRepo(pds: string, did: string, maxBytes: number): Promise<Uint8Array> {
  const url = new URL('/xrpc/com.atproto.sync.getRepo', pds)
  url.searchParams.set('did', did)
  const res = await fetch(url, { signal: AbortSignal.timeout(300_000) })
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string }
    throw new Error(`getRepo ${res.status} ${body.error ?? ''} ${body.message ?? ''}`.trim())
  }
  if (Number(res.headers.get('content-length') ?? 0) > maxBytes) throw new Error(`repo larger than ${maxBytes} bytes`)
  const bytes = new Uint8Array(await res.arrayBuffer())
  if (bytes.byteLength > maxBytes) throw new Error(`repo larger than ${maxBytes} bytes`)
  return bytes
}

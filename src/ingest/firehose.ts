import type { ViewConfig } from '../item-view.js'
import type { IndexDb } from '../db/index.js'
import { dropCursor, markLiveTail, storedCursor, touchCursor } from '../db/store.js'
import type { Logger } from '../log.js'
import { serviceId } from '../redact.js'
import { retry } from '../retry.js'
import { Backfiller } from './backfill.js'
import { EventDecoder } from './events.js'
import { BackfillHandOver } from './handover.js'
import type { Identity } from '../identity.js'
import { Indexer } from './indexer.js'
import { metrics } from './metrics.js'
import { CommitPipeline } from './pipeline.js'
import { PostIndex } from './posts.js'
import { countQuarantine, recheckQuarantine } from './quarantine.js'
import { FirehoseErrorFrame, subscribeRepos, wsUrl, type FirehoseMessage } from './subscription.js'
import { createVerifyPool, type CommitVerifier } from './verify-pool.js'
import { SECP256K1_VERIFIER } from '../signature.js'

export interface IngestOptions {
  db: IndexDb
  identity: Identity
  /**
   * Firehose hosts: PDSes or relays, as http(s):// or ws(s):// URLs, possibly with credentials.
   * Each keeps its own cursor under its {@link serviceId} (no credentials: it is shown and logged).
   */
  services: string[]
  /** Origins of the PDSes whose repos may own short codes (see Provenance). */
  trustedPds: string[]
  /** Origins of the relays whose #identity, #account and #sync events are believed; none by default. */
  trustedRelays?: string[]
  log: Logger
  /** Verify commit signatures and MST proofs (and backfilled repos). Default true. */
  verify?: boolean
  /**
   * Worker threads verifying and decoding commits (INGEST_VERIFY_THREADS; src/ingest/verify-pool.ts),
   * shared by every host; 0 does it on the main thread. Default: the machine's cores. Ignored
   * when `verifier` is given.
   */
  verifyThreads?: number
  /** A verify pool the caller owns (and closes), e.g. one per process kept warm across leadership terms; else the ingest makes one of `verifyThreads` and closes it on stop. */
  verifier?: CommitVerifier
  /** Run a backfill of every host now (`ac-appview ingest --backfill`). */
  backfill?: boolean
  /** Replay from this seq instead of the stored cursor (no backfill is implied). */
  startCursor?: number
  /** Events per transaction at most; smaller batches commit as soon as the stream is idle. */
  batchSize?: number
  /** Events parsed and verified ahead of the one being committed (bounded: backpressure). */
  parseWindow?: number
  /** Interval of the heartbeat that tells /xrpc/_health the ingest is connected and idle, in ms. */
  heartbeatMs?: number
  /** A connection silent for this long is re-dialled, in ms (see subscribeRepos). */
  watchdogMs?: number
  /** Longest backoff between reconnects, in seconds. */
  maxReconnectSeconds?: number
  /** getRepo requests at once per PDS during a backfill. */
  backfillConcurrency?: number
  /** Index posts about AC (src/ingest/posts.ts) for AC's site at this URL (AC_PUBLIC_URL); off when undefined. */
  postsFor?: string
  /** The AppView's view configuration: each item's list view is kept with its row (see IndexerOptions.views); none stored when undefined. */
  views?: ViewConfig
}

export interface Ingest {
  /** Last seq committed to the index for the first host. */
  cursor(): number | undefined
  /** Resolves when every backfill started so far has finished. */
  backfillsSettled(): Promise<void>
  stop(): Promise<void>
}

/**
 * Follows `com.atproto.sync.subscribeRepos` on each host and indexes `computer.aesthetic.*`
 * records and, with `postsFor`, posts about AC (see {@link HostStream}); backfills when asked, on
 * first start, and when the host's window no longer covers the cursor. Re-checks the quarantine
 * when the lexicons changed.
 */
export async function startIngest(opts: IngestOptions): Promise<Ingest> {
  const posts = opts.postsFor === undefined ? undefined : await PostIndex.load(opts.db, opts.postsFor, opts.log)
  const indexer = new Indexer({
    db: opts.db,
    identity: opts.identity,
    trustedPds: opts.trustedPds,
    trustedRelays: opts.trustedRelays,
    log: opts.log,
    onActor: posts && ((did, trusted) => posts.noteActor(did, trusted)),
    views: opts.views,
  })
  await recheckQuarantine(indexer, opts.log)
  const rebuilt = await indexer.refreshViews()
  if (rebuilt > 0) opts.log.info({ rebuilt }, 'stored item views rebuilt')
  const backfiller = new Backfiller({
    indexer,
    identity: opts.identity,
    log: opts.log.child({ part: 'backfill' }),
    verify: opts.verify ?? true,
    concurrencyPerHost: opts.backfillConcurrency ?? 4,
    posts,
  })
  const verifier = opts.verifier ?? createVerifyPool(opts.verifyThreads)
  const closeVerifier = () => (opts.verifier ? Promise.resolve() : verifier.close())
  await verifier.ready() // workers loaded before the stream starts: their loading does not compete with its first DID lookups
  const streams = opts.services.map((s) => new HostStream(wsUrl(s), indexer, backfiller, posts, verifier, opts))
  const runs = await Promise.all(streams.map((s) => s.start())).catch(async (err) => {
    await closeVerifier()
    throw err
  })
  const quarantineGauge = setInterval(() => void countQuarantine(opts.db).catch(() => {}), 15_000)
  quarantineGauge.unref()
  return {
    cursor: () => streams[0]?.cursor(),
    backfillsSettled: async () => {
      await Promise.all(streams.map((s) => s.backfillHandedOver()))
      await backfiller.idle()
    },
    async stop() {
      clearInterval(quarantineGauge)
      await Promise.all(streams.map((s) => s.stop()))
      await Promise.all(runs.map((r) => r.done))
      await backfiller.stop()
      await closeVerifier() // the streams are done: no event awaits a worker any more
    },
  }
}

/**
 * The connection to one host: connects, feeds every message to a {@link CommitPipeline} (decoded
 * by an {@link EventDecoder}, committed in order with the cursor), and on failure waits and
 * resumes from the committed cursor, until stopped. A failed commit drops the connection; the
 * host's error frames decide what next (FutureCursor: the cursor is dropped and the host
 * backfilled). When backfills run is the {@link BackfillHandOver}'s decision; the heartbeat
 * marks the ingest alive while connected and idle.
 */
class HostStream {
  /** The host's identifier: its URL without credentials (cursor row, logs, metric labels). */
  private readonly service: string
  /** Last seq committed to the index. */
  private committed?: number
  /** Last seq received on the current connection (the cursor a reconnect asks for). */
  private received?: number
  private connected = false
  private readonly stopping = new AbortController()
  private pipeline?: CommitPipeline
  /** The current connection's controller, and whether it was ever open. */
  private conn?: { abort: AbortController; opened: boolean }
  private readonly handOver: BackfillHandOver
  private readonly decoder: EventDecoder
  private readonly log: Logger

  /** @param url the host's ws(s) URL, credentials included (used to connect, never shown). */
  constructor(
    private readonly url: string,
    private readonly indexer: Indexer,
    private readonly backfiller: Backfiller,
    posts: PostIndex | undefined,
    verifier: CommitVerifier,
    private readonly opts: IngestOptions,
  ) {
    this.service = serviceId(url)
    this.log = opts.log.child({ service: this.service })
    this.handOver = new BackfillHandOver(this.service, backfiller, this.log)
    this.decoder = new EventDecoder({
      service: this.service,
      url,
      indexer,
      identity: opts.identity,
      posts,
      trustedPds: opts.trustedPds,
      verify: opts.verify ?? true,
      verifier,
      log: this.log,
    })
    metrics.connected.set({ service: this.service }, 0)
  }

  cursor(): number | undefined {
    return this.committed
  }

  /** Loads the cursor, decides whether a backfill is due, and starts the stream; `done` settles at its end. */
  async start(): Promise<{ done: Promise<void> }> {
    const stored = await storedCursor(this.indexer.db, this.service)
    this.committed = this.opts.startCursor ?? stored
    const backfill = await this.handOver.atStart({ requested: !!this.opts.backfill, startCursor: this.opts.startCursor, storedSeq: stored })
    this.log.info(
      { cursor: this.committed ?? 'live tail', backfill, verify: this.opts.verify ?? true, verifyThreads: this.decoder.threads, secp256k1: SECP256K1_VERIFIER },
      'ingest starting',
    )
    const heartbeat = setInterval(() => void this.heartbeat(), this.opts.heartbeatMs ?? 10_000)
    heartbeat.unref()
    return { done: this.loop().finally(() => clearInterval(heartbeat)) }
  }

  /** Resolves when no backfill waits for this stream to connect. */
  backfillHandedOver(): Promise<void> {
    return this.handOver.handedOver()
  }

  async stop(): Promise<void> {
    this.stopping.abort()
    this.handOver.stop()
    this.pipeline?.release()
  }

  /** Connections one after another, with backoff between failed ones (1 s doubling to maxReconnectSeconds), until stopped. */
  private async loop(): Promise<void> {
    await retry(() => this.connection(), {
      minMs: 1000,
      maxMs: (this.opts.maxReconnectSeconds ?? 30) * 1000,
      signal: this.stopping.signal,
      onFailure: (err) => this.onConnectionError(err),
    })
  }

  private async onConnectionError(err: Error): Promise<void> {
    if (err instanceof FirehoseErrorFrame && err.code === 'FutureCursor') {
      // The host has never reached our cursor (it was reset, or is another host): start over.
      this.log.warn({ cursor: this.committed }, 'cursor is in the future of the host: dropping it, following the live tail and backfilling')
      await dropCursor(this.indexer.db, this.service)
      this.committed = undefined
      await this.handOver.futureCursor()
      metrics.reconnects.inc({ service: this.service, reason: 'future cursor' })
      return
    }
    metrics.reconnects.inc({ service: this.service, reason: err instanceof FirehoseErrorFrame ? err.code : 'error' })
    this.log.error({ err: err.message }, 'firehose connection failed; resuming from the committed cursor')
  }

  /** One subscription: messages pushed into a fresh pipeline, which commits them in order. Resolves only when stopped. */
  private async connection(): Promise<void> {
    await this.handOver.beforeConnect()
    const conn = new AbortController()
    this.conn = { abort: conn, opened: false }
    const abort = () => conn.abort()
    this.stopping.signal.addEventListener('abort', abort, { once: true })
    this.received = this.committed
    const pipeline = (this.pipeline = new CommitPipeline({
      service: this.service,
      indexer: this.indexer,
      batchSize: this.opts.batchSize ?? 500,
      parseWindow: this.opts.parseWindow ?? 64,
      onCommitted: (seq, resync) => {
        this.committed = seq
        for (const did of resync) void this.backfiller.resync(did, this.service)
      },
    }))
    const committing = pipeline
      .run(conn.signal, () => this.stopping.signal.aborted)
      .catch((err) => {
        conn.abort()
        throw err
      })
    committing.catch(() => {})
    let consumeError: unknown = new Error('firehose stream ended')
    try {
      await this.consume(pipeline, conn.signal)
    } catch (err) {
      consumeError = err
    } finally {
      conn.abort()
      pipeline.release()
      this.stopping.signal.removeEventListener('abort', abort)
      this.setConnected(false)
    }
    await committing // its failure (a commit) is the cause when there is one
    if (!this.stopping.signal.aborted) throw consumeError
  }

  /** Reads the subscription into `pipeline` (waiting while its window is full) until the connection ends. */
  private async consume(pipeline: CommitPipeline, signal: AbortSignal): Promise<void> {
    for await (const msg of subscribeRepos({
      service: this.url,
      cursor: () => this.received,
      signal,
      // At the live tail there is no cursor to resume from: a quiet host is no reason to re-dial.
      watchdogMs: this.received === undefined ? undefined : (this.opts.watchdogMs ?? 60_000),
      heartbeatMs: Math.min(10_000, this.opts.watchdogMs ?? 10_000),
      maxReconnectSeconds: this.opts.maxReconnectSeconds ?? 30,
      onConnect: () => this.onConnect(),
      onDisconnect: () => this.setConnected(false),
      onReconnect: (err, attempt) => {
        if (this.received === undefined && this.conn?.opened) {
          this.handOver.tailDropped() // re-dialling the tail would skip whatever happened meanwhile
          this.conn.abort.abort()
        }
        metrics.reconnects.inc({ service: this.service, reason: (err as Error)?.name ?? 'error' })
        this.log.warn({ err: (err as Error)?.message, attempt }, 'firehose reconnecting')
      },
    })) {
      const seq = msg.body.seq
      metrics.eventsIn.inc({ service: this.service, type: msg.type })
      if (msg.type === '#info') {
        this.onInfo(msg)
        continue
      }
      if (typeof seq !== 'number' || (this.received !== undefined && seq <= this.received)) continue
      this.received = seq
      await pipeline.push(this.decoder.decode(msg, seq))
      if (signal.aborted) return
    }
  }

  private onConnect(): void {
    if (this.conn) this.conn.opened = true
    this.setConnected(true)
    this.log.info({ cursor: this.received ?? 'live tail' }, 'firehose connected')
    if (this.received === undefined)
      void markLiveTail(this.indexer.db, this.service).catch((err) => this.log.error({ err: err.message }, 'could not record the live tail'))
    this.handOver.connected() // connected first, so every commit a snapshot misses arrives on this stream
  }

  /** `#info`: OutdatedCursor means events between our cursor and the host's window are lost: backfill. */
  private onInfo(msg: FirehoseMessage): void {
    this.log.warn({ name: msg.body.name, message: msg.body.message }, 'firehose info')
    if (msg.body.name === 'OutdatedCursor') this.handOver.outdatedCursor()
  }

  private setConnected(up: boolean): void {
    this.connected = up
    metrics.connected.set({ service: this.service }, up ? 1 : 0)
  }

  /** While connected with nothing in flight, marks the ingest alive (for /xrpc/_health). */
  private async heartbeat(): Promise<void> {
    if (!this.connected || (this.pipeline?.depth() ?? 0) > 0) return
    await touchCursor(this.indexer.db, this.service).catch((err) => this.log.error({ err: err.message }, 'heartbeat failed'))
  }
}

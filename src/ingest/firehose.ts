import { RepoVerificationError } from '@atproto/repo'
import { parseAccount } from '@atproto/sync'
import { httpOrigin } from '../config.js'
import type { IndexDb } from '../db/index.js'
import type { Logger } from '../log.js'
import { serviceId } from '../redact.js'
import { Backfiller } from './backfill.js'
import type { Identity } from './identity.js'
import { collectionOf, Indexer, type IndexOp, type RecordOp } from './indexer.js'
import { metrics } from './metrics.js'
import { POST_COLLECTION } from '../feeds/definitions.js'
import { PostIndex } from './posts.js'
import { countQuarantine, recheckQuarantine } from './quarantine.js'
import { FirehoseErrorFrame, httpUrl, subscribeRepos, wsUrl, type FirehoseMessage } from './subscription.js'
import { unverifiedCommit, verifyCommit, type CommitBody, type VerifiedOp } from './verify.js'

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
  /** Run a backfill of every host now (`ac-appview ingest --backfill`). */
  backfill?: boolean
  /** Replay from this seq instead of the stored cursor (no backfill is implied). */
  startCursor?: number
  /** Events per SQLite transaction at most; smaller batches commit as soon as the stream is idle. */
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
  const indexer = new Indexer({ db: opts.db, identity: opts.identity, trustedPds: opts.trustedPds, trustedRelays: opts.trustedRelays, log: opts.log, onActor: posts && ((did, trusted) => posts.noteActor(did, trusted)) })
  await recheckQuarantine(indexer, opts.log)
  const backfiller = new Backfiller({ db: opts.db, indexer, identity: opts.identity, log: opts.log.child({ part: 'backfill' }), verify: opts.verify ?? true, concurrencyPerHost: opts.backfillConcurrency ?? 4 })
  const streams = opts.services.map((s) => new HostStream(wsUrl(s), indexer, backfiller, posts, opts))
  const runs = await Promise.all(streams.map((s) => s.start()))
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
    },
  }
}

/** One parsed event: its seq and time, and what it changes in the index. */
interface Parsed {
  seq: number
  time: string | null
  ops: IndexOp[]
}

/**
 * The stream of one host. Messages are parsed and verified ahead in a bounded window (DID
 * lookups overlap), then applied strictly in seq order and committed in batches, each batch with
 * the seq of its last event in one transaction. The socket is paused while the window is full,
 * so memory stays bounded however fast the host sends. A failed commit drops the connection and
 * resumes from the committed cursor; an event that cannot be verified is skipped and its repo
 * re-fetched (verified) instead, so nothing stalls the stream. What the host says is believed
 * only as far as Provenance allows: its commits are signed by their repos, but trust and account
 * status come from the repos' own PDSes.
 */
class HostStream {
  /** The host's identifier: its URL without credentials (cursor row, logs, metric labels). */
  readonly service: string
  /** The host's http(s) origin, compared with the PDS origins of DID documents. */
  private readonly origin: string
  private committed?: number
  private received?: number
  private connected = false
  private readonly stopping = new AbortController()
  private window: Array<Promise<Parsed>> = []
  private batch: IndexOp[] = []
  private batchEvents = 0
  private batchSeq?: number
  private batchTime: string | null = null
  private wake?: () => void
  private space?: () => void
  private pendingBackfill?: { reason: string; fresh: boolean }
  /** The current connection's controller, and whether it was ever open. */
  private conn?: { abort: AbortController; opened: boolean }
  /** Set when a connection at the live tail (no cursor yet) dropped: what it missed is unknown. */
  private tailGap = false
  private handOverWaiters: Array<() => void> = []
  private readonly log: Logger
  private readonly verify: boolean
  /** The host is one of TRUSTED_PDS: every repo it streams is hosted there. */
  private readonly trustedHost: boolean

  /** @param url the host's ws(s) URL, credentials included (used to connect, never shown). */
  constructor(
    private readonly url: string,
    private readonly indexer: Indexer,
    private readonly backfiller: Backfiller,
    private readonly posts: PostIndex | undefined,
    private readonly opts: IngestOptions,
  ) {
    this.service = serviceId(url)
    this.origin = httpOrigin(url)
    this.log = opts.log.child({ service: this.service })
    this.verify = opts.verify ?? true
    this.trustedHost = opts.trustedPds.includes(this.origin)
    metrics.connected.set({ service: this.service }, 0)
  }

  cursor(): number | undefined {
    return this.committed
  }

  /** Loads the cursor, decides whether a backfill is due, and starts the stream; `done` settles at its end. */
  async start(): Promise<{ done: Promise<void> }> {
    const row = await this.indexer.db.selectFrom('cursor').select('seq').where('service', '=', this.service).executeTakeFirst()
    const stored = row && row.seq >= 0 ? row.seq : undefined // -1: followed the live tail, no event yet
    this.committed = this.opts.startCursor ?? stored
    this.pendingBackfill = await this.backfillDue(stored)
    if (this.pendingBackfill?.fresh) await this.backfiller.begin(this.service, this.pendingBackfill.reason) // visible as running at once
    this.log.info({ cursor: this.committed ?? 'live tail', backfill: this.pendingBackfill?.reason ?? null, verify: this.verify }, 'ingest starting')
    const heartbeat = setInterval(() => void this.heartbeat(), this.opts.heartbeatMs ?? 10_000)
    heartbeat.unref()
    return { done: this.loop().finally(() => clearInterval(heartbeat)) }
  }

  /** Resolves when no backfill waits for this stream to connect (it was handed to the backfiller, or none is due). */
  backfillHandedOver(): Promise<void> {
    if (!this.pendingBackfill || this.stopping.signal.aborted) return Promise.resolve()
    return new Promise((r) => this.handOverWaiters.push(r))
  }

  async stop(): Promise<void> {
    this.stopping.abort()
    this.handOverWaiters.splice(0).forEach((r) => r())
    this.wake?.()
    this.space?.()
  }

  /**
   * Why a backfill must run when the stream connects, or undefined. No cursor (first start, or
   * one lost) means the index cannot know what it missed: a fresh run. A run interrupted while a
   * cursor existed resumes.
   */
  private async backfillDue(storedSeq: number | undefined): Promise<{ reason: string; fresh: boolean } | undefined> {
    if (this.opts.backfill) return { reason: 'requested', fresh: true }
    if (this.opts.startCursor !== undefined) return undefined
    if (storedSeq === undefined) return { reason: 'first start', fresh: true }
    if (await this.backfiller.unfinished(this.service)) return { reason: 'resumed', fresh: false }
    return undefined
  }

  /** Connects, consumes, and on failure waits and resumes from the committed cursor, until stopped. */
  private async loop(): Promise<void> {
    let failures = 0
    while (!this.stopping.signal.aborted) {
      try {
        await this.connection()
        failures = 0
      } catch (err) {
        if (this.stopping.signal.aborted) break
        failures++
        await this.onConnectionError(err)
        await sleep(Math.min(1000 * 2 ** Math.min(failures - 1, 6), (this.opts.maxReconnectSeconds ?? 30) * 1000), this.stopping.signal)
      }
    }
  }

  private async onConnectionError(err: unknown): Promise<void> {
    if (err instanceof FirehoseErrorFrame && err.code === 'FutureCursor') {
      // The host has never reached our cursor (it was reset, or is another host): start over.
      this.log.warn({ cursor: this.committed }, 'cursor is in the future of the host: dropping it, following the live tail and backfilling')
      await this.indexer.db.deleteFrom('cursor').where('service', '=', this.service).execute()
      this.committed = undefined
      this.pendingBackfill = { reason: 'future cursor', fresh: true }
      await this.backfiller.begin(this.service, 'future cursor')
      metrics.reconnects.inc({ service: this.service, reason: 'future cursor' })
      return
    }
    metrics.reconnects.inc({ service: this.service, reason: err instanceof FirehoseErrorFrame ? err.code : 'error' })
    this.log.error({ err: (err as Error).message }, 'firehose connection failed; resuming from the committed cursor')
  }

  /** One subscription: a consumer filling the parse window and a collector committing in order. */
  private async connection(): Promise<void> {
    if (this.tailGap) await this.backfillAfterTailGap()
    const conn = new AbortController()
    this.conn = { abort: conn, opened: false }
    const abort = () => conn.abort()
    this.stopping.signal.addEventListener('abort', abort, { once: true })
    this.received = this.committed
    this.resetBatch()
    this.window = []
    const collector = this.collector(conn.signal).catch((err) => {
      conn.abort()
      throw err
    })
    collector.catch(() => {})
    let consumeError: unknown = new Error('firehose stream ended')
    try {
      await this.consume(conn.signal)
    } catch (err) {
      consumeError = err
    } finally {
      conn.abort()
      this.wake?.()
      this.space?.()
      this.stopping.signal.removeEventListener('abort', abort)
      this.setConnected(false)
    }
    await collector // its failure (a commit) is the cause when there is one
    if (!this.stopping.signal.aborted) throw consumeError
  }

  private async consume(signal: AbortSignal): Promise<void> {
    const parseWindow = this.opts.parseWindow ?? 64
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
          this.tailGap = true // re-dialling the tail would skip whatever happened meanwhile
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
      this.window.push(this.parse(msg, seq))
      this.wake?.()
      metrics.queueDepth.set({ service: this.service }, this.window.length + this.batchEvents)
      if (this.window.length >= parseWindow) await new Promise<void>((r) => (this.space = r))
      if (signal.aborted) return
    }
  }

  /**
   * A connection that followed the live tail dropped before any event gave us a cursor: commits
   * made while it was down are unknown, so every repo is backfilled again (rare: only until the
   * first event).
   */
  private async backfillAfterTailGap(): Promise<void> {
    this.tailGap = false
    this.log.warn('connection at the live tail dropped before the first event: backfilling again')
    this.pendingBackfill = { reason: 'reconnected at the live tail', fresh: true }
    await this.backfiller.begin(this.service, this.pendingBackfill.reason)
  }

  private onConnect(): void {
    if (this.conn) this.conn.opened = true
    this.setConnected(true)
    this.log.info({ cursor: this.received ?? 'live tail' }, 'firehose connected')
    if (this.received === undefined) void this.indexer.markLiveTail(this.service).catch((err) => this.log.error({ err: err.message }, 'could not record the live tail'))
    const due = this.pendingBackfill
    if (!due) return
    // Connected first, so every commit a snapshot misses arrives on this stream.
    this.pendingBackfill = undefined
    void this.backfiller.run(this.service, due.reason, false) // begun in start() or onConnectionError
    this.handOverWaiters.splice(0).forEach((r) => r())
  }

  /** `#info`: OutdatedCursor means events between our cursor and the host's window are lost: backfill. */
  private onInfo(msg: FirehoseMessage): void {
    this.log.warn({ name: msg.body.name, message: msg.body.message }, 'firehose info')
    if (msg.body.name === 'OutdatedCursor') void this.backfiller.run(this.service, 'outdated cursor', true)
  }

  /** Takes parsed events in seq order into the batch; commits when full or when nothing waits. */
  private async collector(signal: AbortSignal): Promise<void> {
    const batchSize = this.opts.batchSize ?? 500
    while (!signal.aborted) {
      if (this.window.length === 0) {
        await this.flush()
        if (this.window.length === 0 && !signal.aborted) await new Promise<void>((r) => (this.wake = r))
        continue
      }
      const parsed = await this.window[0]
      this.window.shift()
      this.space?.()
      this.batch.push(...parsed.ops)
      this.batchEvents++
      this.batchSeq = parsed.seq
      this.batchTime = parsed.time
      if (this.batchEvents >= batchSize) await this.flush()
    }
    if (this.stopping.signal.aborted) await this.flush() // a clean stop keeps what was complete
  }

  /** Commits the batch with its cursor; then re-fetches repos that need it. */
  private async flush(): Promise<void> {
    if (this.batchSeq === undefined) return
    const [ops, seq, time, events] = [this.batch, this.batchSeq, this.batchTime, this.batchEvents]
    this.resetBatch()
    const resync = await this.indexer.commit(ops, this.service, seq, time)
    this.committed = seq
    metrics.eventsIndexed.inc({ service: this.service }, events)
    metrics.cursor.set({ service: this.service }, seq)
    if (time) metrics.lag.set({ service: this.service }, Math.max(0, (Date.now() - Date.parse(time)) / 1000))
    metrics.queueDepth.set({ service: this.service }, this.window.length)
    for (const did of resync) void this.backfiller.resync(did, this.service)
  }

  private resetBatch(): void {
    this.batch = []
    this.batchEvents = 0
    this.batchSeq = undefined
    this.batchTime = null
  }

  /** Parses one event; never rejects (an event that cannot be verified becomes a resync of its repo). */
  private async parse(msg: FirehoseMessage, seq: number): Promise<Parsed> {
    const time = typeof msg.body.time === 'string' ? msg.body.time : null
    try {
      return { seq, time, ops: await this.opsFor(msg) }
    } catch (err) {
      const did = msg.body.repo ?? msg.body.did
      metrics.verifyFailures.inc({ service: this.service })
      this.log.warn({ seq, did, err: (err as Error).message }, 'event failed verification or parsing: re-fetching its repo')
      return { seq, time, ops: typeof did === 'string' ? [{ type: 'resync', did }] : [] }
    }
  }

  private async opsFor(msg: FirehoseMessage): Promise<IndexOp[]> {
    const body = msg.body as never
    switch (msg.type) {
      case '#commit':
        return this.commitOps(body)
      // Identity, account and sync events of actors the index knows nothing of are none of its
      // business (on a relay that is nearly all of them): no DID lookups, no rows.
      case '#identity': {
        const did = (body as { did: string }).did
        if (!(await this.indexer.knows(did))) return []
        // The DID's PDS may have changed with this very event: ask a fresh document before refusing.
        const speaks = (await this.indexer.provenance.speaksFor(this.origin, did)) || (await this.indexer.provenance.speaksFor(this.origin, did, true))
        return speaks ? this.indexer.actorOps(did, { from: this.origin, refresh: true }) : this.refuse(msg.type, did)
      }
      case '#account': {
        const evt = parseAccount(body)
        if (!evt || !(await this.indexer.knows(evt.did))) return []
        if (await this.indexer.provenance.speaksFor(this.origin, evt.did)) return [{ type: 'status', did: evt.did, status: evt.active ? null : (evt.status ?? 'deactivated') }]
        const confirmed = await this.indexer.provenance.accountStatus(evt.did)
        return confirmed ? [{ type: 'status', did: evt.did, status: confirmed.status }] : this.refuse(msg.type, evt.did)
      }
      case '#sync': {
        const did = (body as { did: string }).did
        if (!(await this.indexer.knows(did))) return []
        return (await this.indexer.provenance.speaksFor(this.origin, did)) ? [{ type: 'resync', did }] : this.refuse(msg.type, did)
      }
      default:
        return []
    }
  }

  /** An event this host may not send about `did` (see Provenance): ignored and counted (logged at debug: a host may send floods). */
  private refuse(type: string, did: string): IndexOp[] {
    metrics.eventsRefused.inc({ service: this.service, type })
    this.log.debug({ type, did }, 'event refused: this host does not speak for that DID')
    return []
  }

  /**
   * The AC record and post operations of a commit. Commits touching no AC collection and no post
   * the post filter wants (most of a relay's stream) cost only these checks: they are neither
   * verified nor decoded further.
   */
  private async commitOps(body: CommitBody): Promise<IndexOp[]> {
    const trustedAuthor = this.trustedHost || !!this.posts?.trusts(body.repo)
    const posts = !!this.posts?.wants(body, trustedAuthor)
    if (!posts && !body.ops.some((op) => isAcPath(op.path))) return []
    const match = posts ? (nsid: string) => nsid === POST_COLLECTION || isAcCollection(nsid) : isAcCollection
    const verified = this.verify ? await this.verifiedOps(body, match) : await unverifiedCommit(body, match)
    const ops = (await Promise.all(verified.map((op) => this.recordOp(body, op, trustedAuthor)))).filter((op) => op !== null)
    if (!ops.length) return []
    return [...(await this.indexer.actorOps(body.repo, { from: this.origin })), { type: 'commit', did: body.repo, rev: body.rev, ops }]
  }

  /** The index operation of one verified op: an AC record (or its deletion), or a post; null when none. */
  private async recordOp(body: CommitBody, op: VerifiedOp, trustedAuthor: boolean): Promise<RecordOp | null> {
    if (op.collection === POST_COLLECTION) return this.posts!.op(body.repo, op.rkey, op.cid?.toString(), body.rev, op.record, op.action, body.time, trustedAuthor)
    if (op.action === 'delete') return { type: 'delete', uri: `at://${body.repo}/${op.collection}/${op.rkey}`, rev: body.rev }
    return this.indexer.recordOp(collectionOf(op.collection)!, body.repo, op.rkey, op.cid!.toString(), body.rev, op.record, op.action)
  }

  /** {@link verifyCommit} with the repo's signing key; once more with a fresh key when it fails (key rotation). */
  private async verifiedOps(body: CommitBody, match: (nsid: string) => boolean, refresh = false): Promise<VerifiedOp[]> {
    const key = await this.opts.identity.resolver.did.resolveAtprotoKey(body.repo, refresh)
    try {
      return await verifyCommit(body, key, match)
    } catch (err) {
      if (err instanceof RepoVerificationError && !refresh) return this.verifiedOps(body, match, true)
      throw err
    }
  }

  private setConnected(up: boolean): void {
    this.connected = up
    metrics.connected.set({ service: this.service }, up ? 1 : 0)
  }

  /** While connected with nothing in flight, marks the ingest alive (for /xrpc/_health). */
  private async heartbeat(): Promise<void> {
    if (!this.connected || this.window.length > 0 || this.batchEvents > 0) return
    await this.indexer.touch(this.service).catch((err) => this.log.error({ err: err.message }, 'heartbeat failed'))
  }
}

/** Whether `nsid` is exactly one of AC's collections (the firehose's own filter is a prefix match). */
function isAcCollection(nsid: string): boolean {
  return collectionOf(nsid) !== undefined
}

/** `computer.aesthetic.painting/3k…` → whether the collection is one of AC's. */
function isAcPath(path: string): boolean {
  return isAcCollection(path.slice(0, path.indexOf('/')))
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true })
  })
}

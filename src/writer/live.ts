import type { ChangeStream, ChangeStreamDocument, Db, Document, ObjectId, ResumeToken } from 'mongodb'
import { byMongo, type MirroredCollection } from '../collections/index.js'
import { applyOptions, forEachRepo, type WriterOptions } from './backfill.js'
import { applyPlan } from './apply.js'
import { Lanes } from './lanes.js'
import type { Ledger } from './ledger.js'
import { metrics, setProblemSource } from './metrics.js'
import { Mirror } from './mirror.js'
import { idOf, planRepo, type Planned } from './plan.js'
import { RunRecorder } from './report.js'
import { Sessions } from './sessions.js'

export interface LiveOptions extends WriterOptions {
  ledger: Ledger
  /** Seconds between reconcile passes; 0 runs only the first pass, at start. */
  reconcileSeconds: number
  /** Called after each change has been mirrored (for latency measurement and tests). */
  onMirrored?(change: { collection: string; id: string; operation: string }): void
  /** A fresh connection to AC's database, used when the change stream keeps failing. */
  reconnect?(): Promise<Db>
}

/** The last (or running) reconcile pass. */
export interface ReconcileStatus {
  running: boolean
  passes: number
  lastStartedAt?: string
  lastDurationMs?: number
  lastRepos?: number
  /** Repos compared per second in the last pass. */
  reposPerSecond?: number
}

export interface LiveStatus {
  /** Changes mirrored since start. */
  mirrored: number
  /** Changes that failed for good since start (each recorded as a problem). */
  failed: number
  /** Changes received and not yet mirrored. */
  backlog: number
  /** Why some repos' changes are waiting (PDS or MongoDB unreachable), if they are. */
  paused?: string
  reconcile: ReconcileStatus
}

export interface Live {
  status(): LiveStatus
  /** Resolves once the first reconcile pass is over. */
  reconciled(): Promise<void>
  /** Rejects if live mode dies (a fault its retries do not cover); never settles otherwise. */
  failure: Promise<never>
  /** Finishes the changes in hand (a change waiting on a transient error is left for the next start), saves the resume token and stops. */
  stop(): Promise<void>
}

/** Ledger key of the change stream's resume token. */
const TOKEN_KEY = 'changeStreamToken'
const WATCHED = ['users', '@handles']
const BACKREF_FIELD = /^(atproto|at)(\.|$)/
/** Changes held in lanes at most; past this the change stream is read no further until they drain. */
const MAX_BACKLOG = 10_000
/** How often live mode writes its counts and heartbeat to the ledger. */
const HEARTBEAT_MS = 5000

/**
 * `writer live`: follows MongoDB with a change stream on AC's collections, `users` and
 * `@handles` (resume token in the ledger, so a restart continues where it stopped) and mirrors
 * each change within a second: inserts and edits are written at the item's record key, nukes and
 * deletions delete the record, un-nukes bring it back at the same key, a new AC handle changes the
 * PDS handle. Changes run in per-repo {@link Lanes}: in order within a repo, side by side across
 * repos, so one user's failing change (retried while transient, recorded as a problem when
 * permanent) never holds up anyone else's. A reconcile pass (a backfill that catches anything the
 * stream missed) runs at start and every `reconcileSeconds` beside the stream, repo by repo: its
 * writes to a repo are serialised with that repo's changes, and an item a change touched during
 * the pass is left to the change, so the newest state always wins. Resolves once the stream is open.
 */
export async function startLive(opts: LiveOptions): Promise<Live> {
  return new LiveWriter(opts).start()
}

class LiveWriter implements Live {
  private db: Db
  private readonly sessions: Sessions
  private readonly lanes: Lanes
  private readonly recorder: RunRecorder
  private readonly mirror: Mirror
  private readonly tokens: TokenTracker
  private readonly runId: number
  /** When a change last touched each item (`collection id`): a reconcile pass leaves those items alone. */
  private readonly touched = new Map<string, number>()
  private readonly state = { mirrored: 0, failed: 0 }
  private readonly reconcileState: ReconcileStatus = { running: false, passes: 0 }
  private stopping = false
  private stream?: ChangeStream
  private readonly wake = new AbortController()
  private loops: Promise<void>[] = []
  private firstPass!: Promise<void>
  private heartbeat?: NodeJS.Timeout
  failure!: Promise<never>

  constructor(private readonly opts: LiveOptions) {
    this.db = opts.db
    this.sessions = opts.sessions ?? new Sessions(opts.pdsUrl, opts.log, Math.min(2, opts.retries ?? 2))
    this.lanes = new Lanes(opts.concurrency, opts.log)
    this.recorder = new RunRecorder(false, opts.ledger, opts.log, false)
    this.mirror = new Mirror({ db: () => this.db, sessions: this.sessions, ledger: opts.ledger, recorder: this.recorder, ctx: opts.ctx, guestUser: opts.guestUser, log: opts.log })
    this.tokens = new TokenTracker(opts.ledger)
    this.runId = opts.ledger.startRun('live')
  }

  async start(): Promise<Live> {
    setProblemSource(() => this.opts.ledger.problemGroups(0))
    let ready!: () => void
    const opened = new Promise<void>((r) => (ready = r))
    const streamLoop = this.follow(ready)
    await Promise.race([opened, streamLoop])
    this.firstPass = this.pass()
    this.loops = [streamLoop, this.reconcileLoop()]
    this.failure = new Promise<never>((_, reject) => void Promise.all(this.loops).catch(reject))
    this.heartbeat = setInterval(() => this.writeCounts(), HEARTBEAT_MS)
    this.heartbeat.unref()
    this.opts.log.info({ reconcileSeconds: this.opts.reconcileSeconds }, 'writer live started')
    return this
  }

  status(): LiveStatus {
    const paused = [...this.lanes.paused.values()][0]
    return { ...this.state, backlog: this.lanes.backlog, ...(paused ? { paused } : {}), reconcile: { ...this.reconcileState } }
  }

  reconciled(): Promise<void> {
    return this.firstPass
  }

  async stop(): Promise<void> {
    this.stopping = true
    this.wake.abort()
    clearInterval(this.heartbeat)
    await this.stream?.close().catch(() => {})
    await Promise.all(this.loops)
    await this.lanes.stop()
    this.recorder.flush()
    this.opts.ledger.finishRun(this.runId, this.counts())
    setProblemSource(undefined)
    this.opts.log.info({ mirrored: this.state.mirrored }, 'writer live stopped')
  }

  /** Reads the change stream (reopening it from the saved resume token after a failure) and hands each change to its lane. */
  private async follow(ready: () => void): Promise<void> {
    while (!this.stopping) {
      const saved = this.opts.ledger.getState(TOKEN_KEY)
      try {
        this.stream = this.db.watch([{ $match: { 'ns.coll': { $in: [...WATCHED, ...byMongo.keys()] } } }], {
          fullDocument: 'updateLookup', // for users; items and handles are read afresh
          ...(saved ? { resumeAfter: JSON.parse(saved) as ResumeToken } : {}),
        })
        // The driver opens the stream lazily: the first tryNext starts it, so nothing written
        // after this point can be missed, even during the first reconcile pass.
        let change = await this.stream.tryNext()
        if (!saved && this.stream.resumeToken) this.opts.ledger.setState(TOKEN_KEY, JSON.stringify(this.stream.resumeToken))
        ready()
        while (!this.stopping) {
          change ??= await this.stream.tryNext()
          if (!change) continue
          while (this.lanes.backlog >= MAX_BACKLOG && !this.stopping) await sleep(100, this.wake.signal)
          await this.dispatch(change)
          change = null
        }
      } catch (err) {
        if (this.stopping) break
        this.opts.log.warn({ err: (err as Error).message }, 'change stream failed; reconnecting and resuming from the saved resume token')
        await sleep(1000, this.wake.signal)
        await this.reconnect()
      } finally {
        await this.stream?.close().catch(() => {})
      }
    }
  }

  private async reconnect(): Promise<void> {
    const reconnect = this.opts.reconnect
    for (let wait = 1000; reconnect && !this.stopping; wait = Math.min(30_000, wait * 2)) {
      try {
        this.db = await reconnect()
        return
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message, retryInMs: wait }, 'MongoDB unreachable; retrying')
        await sleep(wait, this.wake.signal)
      }
    }
  }

  /** Queues one change on its repo's lane; the resume token moves past it once it (and every earlier change) is done. */
  private async dispatch(change: ChangeStreamDocument<Document>): Promise<void> {
    const route = await this.route(change)
    const seq = this.tokens.add(change._id)
    if (!route) return this.tokens.done(seq)
    this.touched.set(route.key, Date.now())
    this.lanes
      .run(route.lane, route.what, async () => {
        this.touched.set(route.key, Date.now())
        await route.run()
      })
      .then(
        () => {
          this.state.mirrored++
          metrics.changes.inc({ result: 'mirrored' })
          this.tokens.done(seq)
          this.opts.onMirrored?.({ collection: route.collection, id: route.id, operation: change.operationType })
        },
        (err: Error) => {
          if (this.stopping) return // left for the next start: the resume token stays before it
          this.state.failed++
          metrics.changes.inc({ result: 'failed' })
          this.recorder.problem({ kind: route.kind, id: route.id, repo: route.lane, action: 'failed', reason: err.message, private: true })
          this.tokens.done(seq)
        },
      )
      .finally(() => {
        this.recorder.flush()
        metrics.backlog.set(this.lanes.backlog)
        metrics.pausedRepos.set(this.lanes.paused.size)
      })
  }

  /** What a change asks for: the lane (repo owner) and the work; undefined when nothing is to be done. */
  private async route(change: ChangeStreamDocument<Document>) {
    if (!('ns' in change) || !('documentKey' in change)) return undefined
    const collection = 'coll' in change.ns ? (change.ns.coll ?? '') : ''
    const _id = change.documentKey._id as ObjectId
    const id = typeof _id?.toHexString === 'function' ? _id.toHexString() : String(_id)
    const base = { collection, id, key: `${collection} ${id}` }
    if (collection === 'users') {
      this.forgetSession(change)
      return undefined
    }
    if (collection === '@handles') return { ...base, kind: 'handle', lane: id, what: `handle of ${collection}`, run: () => this.mirror.handle(id) }
    const col = byMongo.get(collection)
    if (!col) return undefined
    if (change.operationType === 'update' && onlyBackrefs(change.updateDescription.updatedFields, change.updateDescription.removedFields)) return undefined
    const lane = await this.mirror.laneOf(col, _id)
    if (lane === undefined) return undefined
    return { ...base, kind: col.kind as MirroredCollection['kind'], lane, what: `${change.operationType} ${col.kind}`, run: () => this.mirror.item(col, _id) }
  }

  /** A user whose PDS account was removed or whose password changed: its session is dropped (the next change logs in afresh). */
  private forgetSession(change: ChangeStreamDocument<Document>) {
    if (change.operationType === 'update' && Object.keys(change.updateDescription.updatedFields ?? {}).every((f) => f === 'atproto.handle') && !change.updateDescription.removedFields?.length) return
    const did = 'fullDocument' in change ? change.fullDocument?.atproto?.did : undefined
    this.sessions.forget(typeof did === 'string' ? did : undefined)
  }

  private async reconcileLoop(): Promise<void> {
    await this.firstPass
    while (!this.stopping && this.opts.reconcileSeconds > 0) {
      await sleep(this.opts.reconcileSeconds * 1000, this.wake.signal)
      if (!this.stopping) await this.pass()
    }
  }

  /**
   * One reconcile pass: every repo compared with MongoDB and repaired, `concurrency` repos at
   * once, beside the change stream (see {@link startLive}). Never throws: a failed pass is logged
   * and the next one tries again.
   */
  private async pass(): Promise<void> {
    const started = Date.now()
    Object.assign(this.reconcileState, { running: true, lastStartedAt: new Date(started).toISOString() })
    metrics.reconcileRunning.set(1)
    this.opts.log.info('reconcile pass starting')
    const recorder = new RunRecorder(false, this.opts.ledger, this.opts.log, false)
    const skip = (p: Planned) => (this.touched.get(`${p.col.mongo} ${idOf(p)}`) ?? 0) >= started
    try {
      const options = { ...this.opts, db: this.db }
      const repos = await forEachRepo(options, recorder, this.sessions, undefined, async (job, client, records) => {
        if (this.stopping) return
        const planned = await planRepo(job.items, records, this.opts.ctx, true)
        await applyPlan(job.account, client, planned, applyOptions(options, recorder, { skip, exclusive: (fn) => this.lanes.exclusive(job.account.user, fn) }))
      })
      const durationMs = Date.now() - started
      Object.assign(this.reconcileState, { lastDurationMs: durationMs, lastRepos: repos, reposPerSecond: Math.round((repos / Math.max(durationMs, 1)) * 10_000) / 10, passes: this.reconcileState.passes + 1 })
      metrics.reconcilePasses.inc()
      metrics.reconcileDuration.set(durationMs / 1000)
      metrics.reconcileRate.set(this.reconcileState.reposPerSecond!)
      this.opts.log.info({ repos, durationMs, reposPerSecond: this.reconcileState.reposPerSecond, changes: sum(recorder.flatCounts(), ['create', 'update', 'delete']) }, 'reconcile pass done')
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'reconcile pass failed; the next pass tries again')
    } finally {
      this.reconcileState.running = false
      metrics.reconcileRunning.set(0)
      for (const [key, at] of this.touched) if (at < started) this.touched.delete(key)
      this.opts.ledger.pruneProblems()
      this.writeCounts()
    }
  }

  private counts(): Record<string, number> {
    return { ...this.recorder.flatCounts(), mirrored: this.state.mirrored, failedChanges: this.state.failed, reconcilePasses: this.reconcileState.passes }
  }

  private writeCounts() {
    this.opts.ledger.updateRun(this.runId, this.counts(), this.lanes.backlog)
  }
}

/**
 * Resume tokens of the changes handed to lanes, in stream order. Lanes finish out of order; the
 * saved token is always that of the latest change before which every change is done, so a
 * restart replays whatever was still in hand (mirroring is idempotent) and misses nothing.
 */
class TokenTracker {
  private next = 0
  private lowest = 0
  private readonly tokens = new Map<number, ResumeToken>()
  private readonly finished = new Set<number>()

  constructor(private readonly ledger: Ledger) {}

  add(token: ResumeToken): number {
    this.tokens.set(this.next, token)
    return this.next++
  }

  done(seq: number) {
    this.finished.add(seq)
    let token: ResumeToken | undefined
    while (this.finished.delete(this.lowest)) {
      token = this.tokens.get(this.lowest)
      this.tokens.delete(this.lowest++)
    }
    if (token !== undefined) this.ledger.setState(TOKEN_KEY, JSON.stringify(token))
  }
}

function onlyBackrefs(updated: Document | undefined, removed: string[] | undefined): boolean {
  const fields = [...Object.keys(updated ?? {}), ...(removed ?? [])]
  return fields.length > 0 && fields.every((f) => BACKREF_FIELD.test(f))
}

function sum(counts: Record<string, number>, keys: string[]): number {
  return keys.reduce((n, k) => n + (counts[k] ?? 0), 0)
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}

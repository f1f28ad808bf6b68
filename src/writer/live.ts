import type { Db, Document, ObjectId } from 'mongodb'
import { byMongo, type MirroredCollection } from '../collections/index.js'
import type { WriterOptions } from './backfill.js'
import { ChangeFeed, type Change } from './change-feed.js'
import { Lanes } from './lanes.js'
import type { Ledger } from './ledger.js'
import { metrics, setProblemSource } from './metrics.js'
import { Mirror } from './mirror.js'
import { Reconciler, type ReconcileStatus } from './reconcile.js'
import { RunRecorder } from './report.js'
import { Sessions } from './sessions.js'

export type { ReconcileStatus } from './reconcile.js'

export interface LiveOptions extends WriterOptions {
  ledger: Ledger
  /** Seconds between reconcile passes; 0 runs only the first pass, at start. */
  reconcileSeconds: number
  /** Called after each change has been mirrored (for latency measurement and tests). */
  onMirrored?(change: { collection: string; id: string; operation: string }): void
  /** A fresh connection to AC's database, used when the change stream keeps failing. */
  reconnect?(): Promise<Db>
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

/** Collections watched besides the kinds': account changes and new AC handles. */
const WATCHED = ['users', '@handles']
const BACKREF_FIELD = /^(atproto|at)(\.|$)/
/** Changes held in lanes at most; past this the change stream is read no further until they drain. */
const MAX_BACKLOG = 10_000
/** How often live mode writes its counts and heartbeat to the ledger. */
const HEARTBEAT_MS = 5000

/**
 * `writer live`: follows MongoDB ({@link ChangeFeed}: AC's collections, `users` and `@handles`;
 * resume token in the ledger) and mirrors each change within a second ({@link Mirror}): inserts
 * and edits are written at the item's record key, nukes and deletions delete the record, un-nukes
 * bring it back at the same key, a new AC handle changes the PDS handle. Changes run in per-repo
 * {@link Lanes}: in order within a repo, side by side across repos, so one user's failing change
 * (retried while transient, recorded as a problem when permanent) never holds up anyone else's.
 * A {@link Reconciler} pass runs at start and every `reconcileSeconds` beside the stream.
 * Resolves once the stream is open.
 */
export async function startLive(opts: LiveOptions): Promise<Live> {
  return new LiveWriter(opts).start()
}

/** A change routed to its repo's lane. */
interface Route {
  collection: string
  id: string
  /** `collection id`: how the reconciler knows what a change touched. */
  key: string
  kind: string
  /** The repo owner's `users._id`. */
  lane: string
  what: string
  run(): Promise<void>
}

class LiveWriter implements Live {
  private readonly sessions: Sessions
  private readonly lanes: Lanes
  private readonly recorder: RunRecorder
  private readonly mirror: Mirror
  private readonly feed: ChangeFeed
  private readonly reconciler: Reconciler
  private readonly runId: number
  /** When a change last touched each item (`collection id`): a reconcile pass leaves those items alone. */
  private readonly touched = new Map<string, number>()
  private readonly state = { mirrored: 0, failed: 0 }
  private stopping = false
  private loops: Promise<void>[] = []
  private heartbeat?: NodeJS.Timeout
  failure!: Promise<never>

  constructor(private readonly opts: LiveOptions) {
    this.sessions = opts.sessions ?? new Sessions(opts.pdsUrl, opts.log, Math.min(2, opts.retries ?? 2))
    this.lanes = new Lanes(opts.concurrency, opts.log)
    this.recorder = new RunRecorder(false, opts.ledger, opts.log, false)
    this.feed = new ChangeFeed({ ledger: opts.ledger, log: opts.log, db: opts.db, collections: [...WATCHED, ...byMongo.keys()], reconnect: opts.reconnect })
    const db = () => this.feed.database
    this.mirror = new Mirror({
      db,
      sessions: this.sessions,
      ledger: opts.ledger,
      recorder: this.recorder,
      ctx: opts.ctx,
      guestUser: opts.guestUser,
      log: opts.log,
    })
    this.reconciler = new Reconciler({ ...opts, sessions: this.sessions, lanes: this.lanes, touched: this.touched, currentDb: db })
    this.runId = opts.ledger.startRun('live')
  }

  async start(): Promise<Live> {
    setProblemSource(() => this.opts.ledger.problemGroups(0))
    let opened!: () => void
    const open = new Promise<void>((r) => (opened = r))
    const following = this.feed.follow((change, done) => this.dispatch(change, done), opened)
    await Promise.race([open, following])
    this.loops = [following, this.reconciler.run()]
    this.failure = new Promise<never>((_, reject) => void Promise.all(this.loops).catch(reject))
    this.heartbeat = setInterval(() => this.writeCounts(), HEARTBEAT_MS)
    this.heartbeat.unref()
    this.opts.log.info({ reconcileSeconds: this.opts.reconcileSeconds }, 'writer live started')
    return this
  }

  status(): LiveStatus {
    const paused = [...this.lanes.paused.values()][0]
    return { ...this.state, backlog: this.lanes.backlog, ...(paused ? { paused } : {}), reconcile: { ...this.reconciler.status } }
  }

  reconciled(): Promise<void> {
    return this.reconciler.firstPass()
  }

  async stop(): Promise<void> {
    this.stopping = true
    clearInterval(this.heartbeat)
    this.reconciler.stop()
    await this.feed.stop()
    await Promise.all(this.loops)
    await this.lanes.stop()
    this.recorder.flush()
    this.opts.ledger.finishRun(this.runId, this.counts())
    setProblemSource(undefined)
    this.opts.log.info({ mirrored: this.state.mirrored }, 'writer live stopped')
  }

  /** Queues one change on its repo's lane; `done` lets the resume token move past it once it is finished. */
  private async dispatch(change: Change, done: () => void): Promise<void> {
    while (this.lanes.backlog >= MAX_BACKLOG && !this.stopping) await new Promise((r) => setTimeout(r, 100))
    const route = await this.route(change)
    if (!route) return done()
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
          done()
          this.opts.onMirrored?.({ collection: route.collection, id: route.id, operation: change.operationType })
        },
        (err: Error) => {
          if (this.stopping) return // left for the next start: the resume token stays before it
          this.state.failed++
          metrics.changes.inc({ result: 'failed' })
          this.recorder.problem({ kind: route.kind, id: route.id, repo: route.lane, action: 'failed', reason: err.message, private: true })
          done()
        },
      )
      .finally(() => {
        this.recorder.flush()
        metrics.backlog.set(this.lanes.backlog)
        metrics.pausedRepos.set(this.lanes.paused.size)
      })
  }

  /** What a change asks for: the lane (repo owner) and the work; undefined when nothing is to be done. */
  private async route(change: Change): Promise<Route | undefined> {
    if (!('ns' in change) || !('documentKey' in change)) return undefined
    const collection = 'coll' in change.ns ? (change.ns.coll ?? '') : ''
    const _id = change.documentKey._id as ObjectId
    const id = typeof _id?.toHexString === 'function' ? _id.toHexString() : String(_id)
    const base = { collection, id, key: `${collection} ${id}` }
    if (collection === 'users') return void this.forgetSession(change)
    if (collection === '@handles') return { ...base, kind: 'handle', lane: id, what: `handle of ${collection}`, run: () => this.mirror.handle(id) }
    const col = byMongo.get(collection)
    if (!col) return undefined
    if (change.operationType === 'update' && onlyBackrefs(change.updateDescription.updatedFields, change.updateDescription.removedFields)) return undefined
    const lane = await this.mirror.laneOf(col, _id)
    if (lane === undefined) return undefined
    return { ...base, kind: col.kind as MirroredCollection['kind'], lane, what: `${change.operationType} ${col.kind}`, run: () => this.mirror.item(col, _id) }
  }

  /** A user whose PDS account was removed or whose password changed: its session is dropped (the next change logs in afresh). */
  private forgetSession(change: Change) {
    if (
      change.operationType === 'update' &&
      Object.keys(change.updateDescription.updatedFields ?? {}).every((f) => f === 'atproto.handle') &&
      !change.updateDescription.removedFields?.length
    )
      return
    const did = 'fullDocument' in change ? change.fullDocument?.atproto?.did : undefined
    this.sessions.forget(typeof did === 'string' ? did : undefined)
  }

  private counts(): Record<string, number> {
    return { ...this.recorder.flatCounts(), mirrored: this.state.mirrored, failedChanges: this.state.failed, reconcilePasses: this.reconciler.status.passes }
  }

  private writeCounts() {
    this.opts.ledger.updateRun(this.runId, this.counts(), this.lanes.backlog)
  }
}

function onlyBackrefs(updated: Document | undefined, removed: string[] | undefined): boolean {
  const fields = [...Object.keys(updated ?? {}), ...(removed ?? [])]
  return fields.length > 0 && fields.every((f) => BACKREF_FIELD.test(f))
}

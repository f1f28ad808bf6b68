import type { ChangeStream, ChangeStreamDocument, Db, Document, ResumeToken } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import pRetry from 'p-retry'
import type { Logger } from '../log.js'
import type { Ledger } from './ledger.js'

/** Ledger key of the change stream's resume token. */
const TOKEN_KEY = 'changeStreamToken'
/** Longest wait between attempts to reach MongoDB again after the stream failed. */
const MAX_RECONNECT_MS = 30_000

export type Change = ChangeStreamDocument<Document>

export interface ChangeFeedOptions {
  ledger: Ledger
  log: Logger
  /** AC's database. */
  db: Db
  /** The collections to watch. */
  collections: string[]
  /** A fresh connection to AC's database, used when the stream fails; default: reopen on the same one. */
  reconnect?(): Promise<Db>
}

/**
 * A MongoDB change stream on some collections that survives restarts and outages: it resumes from
 * the token saved in the ledger, reopens after a failure (with a fresh connection, retried with
 * backoff while MongoDB is unreachable), and saves a change's token only once it and every earlier
 * change are done (see {@link TokenTracker}), so a restart replays what was in hand and misses
 * nothing. Changes are handed out one at a time, in stream order.
 */
export class ChangeFeed {
  private db: Db
  private stream?: ChangeStream
  private tokens: TokenTracker
  private stopping = false
  private readonly stopped = new AbortController()

  constructor(private readonly opts: ChangeFeedOptions) {
    this.db = opts.db
    this.tokens = new TokenTracker(opts.ledger)
  }

  /** The database the feed reads (after a reconnect, the new connection's). */
  get database(): Db {
    return this.db
  }

  /**
   * Follows the stream until {@link stop}: `handle` gets each change and a `done` to call once
   * the change is finished (then its token can be saved). `opened` is called once the stream is
   * open: nothing written after that can be missed.
   */
  async follow(handle: (change: Change, done: () => void) => Promise<void>, opened: () => void): Promise<void> {
    while (!this.stopping) {
      const saved = this.opts.ledger.getState(TOKEN_KEY)
      try {
        this.stream = this.db.watch([{ $match: { 'ns.coll': { $in: this.opts.collections } } }], {
          fullDocument: 'updateLookup',
          ...(saved ? { resumeAfter: JSON.parse(saved) as ResumeToken } : {}),
        })
        // The driver opens the stream lazily: the first tryNext starts it.
        let change = await this.stream.tryNext()
        if (!saved && this.stream.resumeToken) this.opts.ledger.setState(TOKEN_KEY, JSON.stringify(this.stream.resumeToken))
        opened()
        while (!this.stopping) {
          change ??= await this.stream.tryNext()
          if (!change) continue
          const seq = this.tokens.add(change._id)
          const tokens = this.tokens
          await handle(change, () => tokens.done(seq))
          change = null
        }
      } catch (err) {
        if (this.stopping) break
        this.opts.log.warn({ err: (err as Error).message }, 'change stream failed; reconnecting and resuming from the saved resume token')
        // Changes still in hand finish against the old tracker, which never saves past what failed here.
        this.tokens = new TokenTracker(this.opts.ledger)
        await this.reconnect()
      } finally {
        await this.stream?.close().catch(() => {})
      }
    }
  }

  /** Stops following; the change being handed out finishes first. */
  async stop(): Promise<void> {
    this.stopping = true
    this.stopped.abort()
    await this.stream?.close().catch(() => {})
  }

  private async reconnect(): Promise<void> {
    await sleep(1000, undefined, { signal: this.stopped.signal }).catch(() => {})
    const reconnect = this.opts.reconnect
    if (!reconnect || this.stopping) return
    await pRetry(async () => void (this.db = await reconnect()), {
      retries: Infinity,
      minTimeout: 1000,
      maxTimeout: MAX_RECONNECT_MS,
      randomize: true,
      signal: this.stopped.signal,
      onFailedAttempt: ({ error, attemptNumber }) => this.opts.log.warn({ err: error.message, attempt: attemptNumber }, 'MongoDB unreachable; retrying'),
    }).catch(() => {}) // only a stop ends the retries
  }
}

/**
 * Resume tokens of the changes handed out, in stream order. Changes finish out of order; the
 * saved token is always that of the latest change before which every change is done.
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

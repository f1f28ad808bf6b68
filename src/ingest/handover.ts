import type { Logger } from '../log.js'
import type { Backfiller } from './backfill.js'

/** A backfill the stream owes its host, and whether it starts over (`fresh`) or resumes. */
interface Due {
  reason: string
  fresh: boolean
}

/**
 * When one host's backfill runs, relative to its stream: a backfill is due on first start (no
 * cursor), when asked, after FutureCursor (the cursor was dropped), when a connection at the live
 * tail dropped before its first event (what it missed is unknown), or to resume one that was
 * interrupted. A due backfill is handed to the Backfiller only once the stream is connected, so
 * every commit a snapshot misses arrives on the stream (live commits at or below a snapshot's rev
 * are skipped by the indexer). An OutdatedCursor notice starts one at once (the stream is
 * connected then).
 */
export class BackfillHandOver {
  private due?: Due
  /** Set when a connection at the live tail (no cursor yet) dropped after opening. */
  private tailGap = false
  private waiters: Array<() => void> = []
  private stopped = false

  constructor(
    private readonly service: string,
    private readonly backfiller: Backfiller,
    private readonly log: Logger,
  ) {}

  /**
   * Decides at start whether a backfill is due: `requested` (`--backfill`), none when replaying
   * from `startCursor`, a fresh one without a stored cursor, a resumed one when the last run did
   * not finish. A fresh run is begun now, so it shows as running at once.
   * @returns its reason, or null.
   */
  async atStart(opts: { requested: boolean; startCursor?: number; storedSeq?: number }): Promise<string | null> {
    if (opts.requested) this.due = { reason: 'requested', fresh: true }
    else if (opts.startCursor !== undefined) this.due = undefined
    else if (opts.storedSeq === undefined) this.due = { reason: 'first start', fresh: true }
    else if (await this.backfiller.unfinished(this.service)) this.due = { reason: 'resumed', fresh: false }
    if (this.due?.fresh) await this.backfiller.begin(this.service, this.due.reason)
    return this.due?.reason ?? null
  }

  /** The host answered FutureCursor (it was reset, or is another host): everything is backfilled again. */
  async futureCursor(): Promise<void> {
    await this.owe('future cursor')
  }

  /** A connection that followed the live tail dropped after opening: whatever happened meanwhile is unknown. */
  tailDropped(): void {
    this.tailGap = true
  }

  /** Before each connection: a dropped live-tail connection means every repo is backfilled again (rare: only until the first event). */
  async beforeConnect(): Promise<void> {
    if (!this.tailGap) return
    this.tailGap = false
    this.log.warn('connection at the live tail dropped before the first event: backfilling again')
    await this.owe('reconnected at the live tail')
  }

  /** The stream is connected: a due backfill runs now (begun before, or resumed). */
  connected(): void {
    const due = this.due
    if (!due) return
    this.due = undefined
    void this.backfiller.run(this.service, due.reason, false)
    this.waiters.splice(0).forEach((r) => r())
  }

  /** `#info OutdatedCursor`: events between the cursor and the host's window are lost. */
  outdatedCursor(): void {
    void this.backfiller.run(this.service, 'outdated cursor', true)
  }

  /** Resolves when no backfill waits for the stream to connect (handed over, or none due). */
  handedOver(): Promise<void> {
    if (!this.due || this.stopped) return Promise.resolve()
    return new Promise((r) => this.waiters.push(r))
  }

  stop(): void {
    this.stopped = true
    this.waiters.splice(0).forEach((r) => r())
  }

  private async owe(reason: string): Promise<void> {
    this.due = { reason, fresh: true }
    await this.backfiller.begin(this.service, reason)
  }
}

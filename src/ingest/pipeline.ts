import type { DecodedEvent } from './events.js'
import type { Indexer, IndexOp } from './indexer.js'
import { metrics } from './metrics.js'

export interface PipelineOptions {
  /** The host's identifier: its cursor row and metric labels. */
  service: string
  indexer: Indexer
  /** Events per transaction at most; smaller batches commit as soon as nothing waits. */
  batchSize: number
  /** Events decoded ahead of the one being committed, at most (backpressure). */
  parseWindow: number
  /** Told after each commit: the seq now committed, and the repos to fetch again. */
  onCommitted(seq: number, resync: string[]): void
}

/**
 * The ordered commit path of one connection: events are decoded ahead in a bounded window (their
 * DID lookups and verifications overlap), then taken strictly in seq order into batches, each
 * committed with the seq of its last event in one transaction (Indexer.commit). {@link push}
 * waits while the window is full, so whoever feeds it (the socket) is paused and memory stays
 * bounded however fast the host sends.
 */
export class CommitPipeline {
  private window: Array<Promise<DecodedEvent>> = []
  private batch: IndexOp[] = []
  private batchEvents = 0
  private batchSeq?: number
  private batchTime: string | null = null
  private wake?: () => void
  private space?: () => void

  constructor(private readonly opts: PipelineOptions) {}

  /** Adds an event being decoded; resolves once the window has room for the next one. */
  async push(event: Promise<DecodedEvent>): Promise<void> {
    this.window.push(event)
    this.wake?.()
    metrics.queueDepth.set({ service: this.opts.service }, this.depth())
    if (this.window.length >= this.opts.parseWindow) await new Promise<void>((r) => (this.space = r))
  }

  /** Events received but not committed: in the window and in the open batch. */
  depth(): number {
    return this.window.length + this.batchEvents
  }

  /**
   * Takes decoded events in order into batches until `signal` aborts; commits a batch when full
   * or when nothing waits. With `keepComplete` true at the end (a clean stop), the last batch is
   * committed too. Rejects when a commit fails (the caller drops the connection and resumes from
   * the committed cursor).
   */
  async run(signal: AbortSignal, keepComplete: () => boolean): Promise<void> {
    while (!signal.aborted) {
      if (this.window.length === 0) {
        await this.flush()
        if (this.window.length === 0 && !signal.aborted) await new Promise<void>((r) => (this.wake = r))
        continue
      }
      const event = await this.window[0]
      this.window.shift()
      this.space?.()
      this.batch.push(...event.ops)
      this.batchEvents++
      this.batchSeq = event.seq
      this.batchTime = event.time
      if (this.batchEvents >= this.opts.batchSize) await this.flush()
    }
    if (keepComplete()) await this.flush()
  }

  /** Releases {@link run} and {@link push} (after the signal given to run was aborted). */
  release(): void {
    this.wake?.()
    this.space?.()
  }

  /** Commits the batch with its cursor. */
  private async flush(): Promise<void> {
    if (this.batchSeq === undefined) return
    const [ops, seq, time, events] = [this.batch, this.batchSeq, this.batchTime, this.batchEvents]
    this.batch = []
    this.batchEvents = 0
    this.batchSeq = undefined
    this.batchTime = null
    const { service } = this.opts
    const resync = await this.opts.indexer.commit(ops, service, seq, time)
    metrics.eventsIndexed.inc({ service }, events)
    metrics.cursor.set({ service }, seq)
    if (time) metrics.lag.set({ service }, Math.max(0, (Date.now() - Date.parse(time)) / 1000))
    metrics.queueDepth.set({ service }, this.window.length)
    this.opts.onCommitted(seq, resync)
  }
}

import { Firehose, type Event, type EventRunner } from '@atproto/sync'
import type { IndexDb } from '../db/index.js'
import type { Logger } from '../log.js'
import type { Identity } from './identity.js'
import { Indexer, type IndexOp } from './indexer.js'

export interface IngestOptions {
  db: IndexDb
  identity: Identity
  /** Firehose host: a PDS or a relay, as http(s):// or ws(s):// URL. */
  service: string
  trustedPds: string[]
  log: Logger
  /** Events per SQLite transaction at most; smaller batches commit as soon as the stream is idle. */
  batchSize?: number
  /** Interval of the heartbeat that tells /xrpc/_health the ingest is alive while the network is quiet. */
  heartbeatMs?: number
}

export interface Ingest {
  /** Last seq committed to the index. */
  cursor(): number | undefined
  stop(): Promise<void>
}

/**
 * Subscribes to `com.atproto.sync.subscribeRepos` on `service` with `@atproto/sync` (commit
 * signatures and MST proofs verified), indexes `computer.aesthetic.*` records, and resumes from
 * the cursor stored in the index. The cursor is committed in the same transaction as the rows
 * it covers, so a crash loses nothing and a replay duplicates nothing.
 */
export async function startIngest(opts: IngestOptions): Promise<Ingest> {
  const service = wsUrl(opts.service)
  const indexer = new Indexer({ db: opts.db, identity: opts.identity, trustedPds: opts.trustedPds, log: opts.log })
  const stored = await opts.db.selectFrom('cursor').select('seq').where('service', '=', service).executeTakeFirst()
  // No stored cursor: replay the host's whole retained window from seq 0 rather than start at
  // the live tail, so records written before the first start are indexed too.
  const runner = new BatchRunner(indexer, service, stored?.seq ?? 0, opts.batchSize ?? 500, opts.log)
  opts.log.info({ service, cursor: stored?.seq ?? null }, 'ingest starting')

  const firehose = new Firehose({
    service,
    idResolver: opts.identity.resolver,
    runner,
    filterCollections: ['computer.aesthetic.*'],
    handleEvent: (evt) => runner.collect(evt),
    onError: (err) => opts.log.error({ err: err.message, cause: (err.cause as Error | undefined)?.message }, 'firehose error'),
  })
  void firehose.start()

  const heartbeat = setInterval(() => void runner.heartbeat(), opts.heartbeatMs ?? 10_000)
  heartbeat.unref()
  return {
    cursor: () => runner.getCursor(),
    async stop() {
      clearInterval(heartbeat)
      await firehose.destroy()
      await runner.drain()
    },
  }
}

/** `@atproto/sync` wants a ws(s) URL; accept the PDS's http(s) URL too. */
function wsUrl(service: string): string {
  return service.replace(/^http(s?):\/\//, 'ws$1://').replace(/\/+$/, '')
}

/**
 * Runs firehose events strictly in order and commits their index operations in batches:
 * a batch is committed when it reaches `batchSize` or when no further event is waiting,
 * together with the seq of the last event it completes.
 */
class BatchRunner implements EventRunner {
  private chain: Promise<void> = Promise.resolve()
  private pending: IndexOp[] = []
  private waiting = 0
  private lastSeq?: number
  private lastTime: string | null = null

  constructor(
    private readonly indexer: Indexer,
    private readonly service: string,
    private cursor: number | undefined,
    private readonly batchSize: number,
    private readonly log: Logger,
  ) {}

  getCursor(): number | undefined {
    return this.cursor
  }

  trackEvent(_did: string, seq: number, handler: () => Promise<void>): Promise<void> {
    this.waiting++
    const run = this.chain.then(async () => {
      await handler()
      this.lastSeq = seq
      this.waiting--
      if (this.pending.length >= this.batchSize || this.waiting === 0) await this.flush()
    })
    this.chain = run.catch((err) => this.log.error({ err: (err as Error).message, seq }, 'event failed'))
    return this.chain
  }

  /** Called by the firehose for each parsed event of the commit being run. */
  async collect(evt: Event): Promise<void> {
    this.lastTime = evt.time
    this.pending.push(...(await this.indexer.opsFor(evt)))
  }

  private async flush(): Promise<void> {
    if (this.lastSeq === undefined || this.lastSeq === this.cursor) return
    const ops = this.pending
    this.pending = []
    try {
      await this.indexer.commit(ops, this.service, this.lastSeq, this.lastTime)
      this.cursor = this.lastSeq
    } catch (err) {
      this.pending = ops.concat(this.pending) // keep them for the next flush
      throw err
    }
  }

  async heartbeat(): Promise<void> {
    if (this.waiting > 0) return
    await this.indexer.touch(this.service).catch((err) => this.log.error({ err: err.message }, 'heartbeat failed'))
  }

  async drain(): Promise<void> {
    await this.chain
  }
}

import pg from 'pg'
import type { Logger } from '../log.js'
import { retry } from '../retry.js'
import { PG_TYPES } from './index.js'
import { VERSION_CHANNEL } from './store.js'

/** Waits between re-reads of a read replica that has not yet replayed a notified version, in ms: from `min`, doubling to `max`. */
const REPLICA_WAIT_MS = { min: 5, max: 1000 }

/** The read replica has not yet replayed the newest notified version. */
class ReplicaBehind extends Error {
  constructor() {
    super('the read replica has not replayed the notified index version yet')
  }
}
/**
 * How often the listening connection is proven alive, in ms: it reads the primary's version (a
 * notification lost with a silently dead connection is caught up too); one that does not answer
 * within the same time is replaced.
 */
const PROBE_MS = 5000

/**
 * The index version as an AppView on PostgreSQL sees it, for caches that must never be stale
 * across processes (on SQLite the row is read when `PRAGMA data_version` moves). The ingest
 * bumps `index_version` in every transaction that changes answers and notifies
 * {@link VERSION_CHANNEL} with the new version (src/db/store.ts, bumpVersion); this watcher
 * LISTENs on the primary (`listenUrl`), and on each notification reads the version from the
 * database the AppView reads (`read`: the primary or a read replica), re-reading a replica until
 * it has replayed the notified version. So {@link version} moves only once reads see the new rows
 * (the row commits with them), and a cache keyed on it never keeps an answer built from rows
 * older than it. Every {@link PROBE_MS} the connection reads the primary's version (proving it
 * alive). While it is down the version is unknown (undefined): callers must not cache then; it is
 * re-established with backoff (1 s doubling to 30 s).
 */
export class VersionWatcher {
  private current: number | undefined
  /** The newest version notified. */
  private target = 0
  private reading?: Promise<void>
  private again = false
  private client?: pg.Client
  private readonly stopping = new AbortController()
  private readonly listening: Promise<void>
  private onListening?: () => void

  /**
   * @param listenUrl the primary (INDEX_DATABASE_URL), where the ingest notifies
   * @param read the pool reads go through
   * @param readsPrimary whether `read` is on the primary too: a notified version is then visible
   *   to reads at once (NOTIFY is delivered after the commit) and is taken without reading it back
   */
  constructor(
    private readonly listenUrl: string,
    private readonly read: pg.Pool,
    private readonly readsPrimary: boolean,
    private readonly log: Logger,
  ) {
    this.listening = new Promise((r) => (this.onListening = r))
    void retry(() => this.listen(), { minMs: 1000, maxMs: 30_000, signal: this.stopping.signal, onFailure: (err) => this.lost(err) })
  }

  /** The version reads now see; undefined while not listening (do not cache). */
  version(): number | undefined {
    return this.current
  }

  /** Resolves once the watcher listens and knows the version (the first time). */
  ready(): Promise<void> {
    return this.listening
  }

  async close(): Promise<void> {
    this.stopping.abort()
    await this.client?.end().catch(() => {})
  }

  /** One listening connection's life: rejects when it fails or ends (then retried). */
  private async listen(): Promise<void> {
    const client = (this.client = new pg.Client({ connectionString: this.listenUrl, types: PG_TYPES, keepAlive: true, query_timeout: PROBE_MS }))
    const ended = new Promise<never>((_, reject) => {
      client.on('error', reject)
      client.on('end', () => reject(new Error('the connection listening for index changes ended')))
    })
    ended.catch(() => {})
    const stopped = new Promise<void>((r) => this.stopping.signal.addEventListener('abort', () => r(), { once: true }))
    await client.connect()
    client.on('notification', (n) => {
      this.target = Math.max(this.target, Number(n.payload ?? 0))
      if (this.readsPrimary && this.current !== undefined) this.current = Math.max(this.current, this.target)
      else this.catchUp().catch(() => client.end().catch(() => {})) // then re-established, and caught up
    })
    await client.query(`listen ${VERSION_CHANNEL}`)
    await this.catchUp() // what changed while nobody listened
    this.onListening?.()
    const probe = setInterval(() => void this.probe(client), PROBE_MS)
    try {
      await Promise.race([ended, stopped])
    } finally {
      clearInterval(probe)
      await client.end().catch(() => {})
    }
  }

  /** Reads the primary's version on the listening connection; ends the connection when that fails (then re-established). */
  private async probe(client: pg.Client): Promise<void> {
    try {
      const { rows } = await client.query<{ version: number }>('select version from index_version where id = 1')
      this.target = Math.max(this.target, Number(rows[0]?.version ?? 0))
      await this.catchUp()
    } catch {
      await client.end().catch(() => {})
    }
  }

  private lost(err: Error): void {
    this.current = undefined
    this.client?.end().catch(() => {})
    if (!this.stopping.signal.aborted) this.log.warn({ err: err.message }, 'not listening for index changes: response caching off until reconnected')
  }

  /**
   * Reads the version reads see and takes it.
   * @throws ReplicaBehind while it is older than the newest notified one (read from a replica).
   */
  private async readVersion(): Promise<void> {
    const { rows } = await this.read.query<{ version: number }>({ name: 'ac_index_version', text: 'select version from index_version where id = 1' })
    this.current = Number(rows[0]?.version ?? 0)
    if (this.current < this.target) throw new ReplicaBehind()
  }

  /** Reads the version until reads reach the newest notified one (one read at a time; more notifications join it). */
  private catchUp(): Promise<void> {
    if (this.reading) {
      this.again = true
      return this.reading
    }
    this.reading = (async () => {
      try {
        do {
          this.again = false
          await retry(() => this.readVersion(), {
            minMs: REPLICA_WAIT_MS.min,
            maxMs: REPLICA_WAIT_MS.max,
            signal: this.stopping.signal,
            onFailure: (err) => err instanceof ReplicaBehind,
          })
        } while (this.again)
      } finally {
        this.reading = undefined
      }
    })()
    return this.reading
  }
}

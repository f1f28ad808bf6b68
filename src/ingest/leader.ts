import type { PostgresPool, PostgresPoolClient } from 'kysely'
import pg from 'pg'
import { PG_TYPES, openSession, preparedQuery, type IndexDb } from '../db/index.js'
import type { Logger } from '../log.js'
import { retry } from '../retry.js'

/**
 * Key of the session-level advisory lock the ingest leader holds on the index database
 * (`pg_advisory_lock(bigint)`): ASCII "ac-ingst". Kysely's migration lock uses another key.
 */
export const LEADER_LOCK_KEY = 0x61632d696e677374n

export interface ElectionOptions {
  /** INDEX_DATABASE_URL. */
  url: string
  /**
   * INGEST_FAILOVER_SECONDS: a leader whose process or connection died is replaced within this
   * long. Sets the server's TCP keepalives on the leader's session (idle a third of it, then 3
   * probes a sixth apart) and the leader's own liveness check (every third, answered within half).
   */
  failoverSeconds: number
  log: Logger
}

/** What the leader runs while it holds the lock. */
export interface Led {
  stop(): Promise<void>
}

/**
 * Exactly one ingest writes to a PostgreSQL index: every ingest process campaigns for the
 * advisory lock {@link LEADER_LOCK_KEY} on a session of its own (`pg_advisory_lock`, waiting in
 * PostgreSQL's lock queue, so a standby is granted it the moment the leader's session ends), and
 * the one holding it runs `lead` with a kysely instance over **that same session**: every write
 * of the leader goes through the connection that holds the lock. When the leader's process dies
 * (SIGKILL) its socket closes and PostgreSQL ends the session, releasing the lock; when its
 * connection is lost, the session ends on the server (TCP keepalives) and the leader notices on
 * its side (socket error, or no answer to its liveness check), stops what it led and campaigns
 * again. A write can therefore never come from a process that lost the lock: its session, the
 * only one it writes through, is gone. The standby resumes from the committed cursor (the cursor
 * is committed with the rows it covers).
 */
export class LeaderElection {
  private readonly stopping = new AbortController()
  private session?: SessionPool
  private leading = false
  private done?: Promise<void>

  constructor(private readonly opts: ElectionOptions) {}

  /** Campaigns, leads while holding the lock (`lead` gets the session's kysely), and campaigns again after losing it, until {@link stop}. */
  start(lead: (db: IndexDb) => Promise<Led>): void {
    this.done = retry(() => this.term(lead), {
      minMs: 1000,
      maxMs: 30_000,
      signal: this.stopping.signal,
      onFailure: (err) => this.opts.log.warn({ err: err.message }, 'ingest leadership ended; campaigning again'),
    }).then(() => {})
  }

  /** Whether this process holds the lock now. */
  isLeader(): boolean {
    return this.leading
  }

  /** Stops leading (what it led is stopped first, then the lock is released, so a standby takes over at once) or campaigning. */
  async stop(): Promise<void> {
    this.stopping.abort()
    if (!this.leading) this.session?.close() // ends a wait in the lock queue
    await this.done
  }

  /**
   * One session's campaign and leadership. Resolves only when stopped; rejects when the session
   * fails or the leadership is lost (then {@link start} campaigns again on a new session).
   */
  private async term(lead: (db: IndexDb) => Promise<Led>): Promise<void> {
    const f = this.opts.failoverSeconds
    const client = new pg.Client({
      connectionString: this.opts.url,
      types: PG_TYPES,
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.ceil((f * 1000) / 3),
      application_name: 'ac-appview ingest',
    })
    const session = (this.session = new SessionPool(client))
    try {
      if (this.stopping.signal.aborted) return
      await client.connect()
      await client.query(
        `set tcp_keepalives_idle = ${Math.ceil(f / 3)}; set tcp_keepalives_interval = ${Math.max(1, Math.ceil(f / 6))}; set tcp_keepalives_count = 3; set tcp_user_timeout = ${f * 1000}`,
      )
      await this.campaign(client)
      if (this.stopping.signal.aborted) return
      await this.leadUntilLost(session, lead)
    } finally {
      session.close()
    }
  }

  /** Runs `lead` over the session until the session is lost (rejects with why) or the election stops (resolves). */
  private async leadUntilLost(session: SessionPool, lead: (db: IndexDb) => Promise<Led>): Promise<void> {
    const f = this.opts.failoverSeconds
    const led = await lead(openSession(session))
    this.leading = true
    this.opts.log.info({ failoverSeconds: f }, 'ingest leading: this process holds the index lock')
    const check = setInterval(() => void session.probe(Math.ceil((f * 1000) / 2)), Math.ceil((f * 1000) / 3))
    const stopped = new Promise<void>((r) => this.stopping.signal.addEventListener('abort', () => r(), { once: true }))
    try {
      await Promise.race([session.lost, stopped])
    } finally {
      clearInterval(check)
      await led.stop().catch((err) => this.opts.log.warn({ err: (err as Error).message }, 'stopping the ingest after its leadership ended'))
      this.leading = false
      await session.unlockAll()
    }
    if (!this.stopping.signal.aborted) throw session.failure ?? new Error('the leader session was lost')
  }

  /**
   * Takes the leader lock, or says this process stands by and waits in PostgreSQL's lock queue
   * for it (asking again every INGEST_FAILOVER_SECONDS, which proves the connection alive).
   */
  private async campaign(client: pg.Client): Promise<void> {
    const key = LEADER_LOCK_KEY.toString()
    const { rows } = await client.query<{ held: boolean }>('select pg_try_advisory_lock($1) as held', [key])
    if (rows[0]?.held) return
    this.opts.log.info('ingest standing by: another process leads; taking over when it stops')
    await client.query(`set lock_timeout = '${this.opts.failoverSeconds}s'`)
    for (;;) {
      try {
        await client.query('select pg_advisory_lock($1)', [key])
        await client.query('set lock_timeout = 0')
        return
      } catch (err) {
        if ((err as { code?: string }).code !== '55P03') throw err // lock_not_available: still waiting
      }
    }
  }
}

/**
 * A kysely pool of exactly one `pg` session, handed to one query or transaction at a time, its
 * statements prepared (preparedQuery). It never reconnects: once the session fails or ends, every
 * use rejects and {@link lost} settles.
 */
class SessionPool implements PostgresPool {
  readonly options = {}
  /** Settles (resolves) when the session has failed or ended; {@link failure} says why. */
  readonly lost: Promise<void>
  /** Why the session was lost, once it is. */
  failure?: Error
  private markLost!: (err: Error) => void
  private tail: Promise<void> = Promise.resolve()

  constructor(private readonly client: pg.Client) {
    this.lost = new Promise<void>((resolve) => {
      this.markLost = (err) => {
        this.failure ??= err
        resolve()
      }
    })
    client.on('error', (err) => this.markLost(err))
    client.on('end', () => this.markLost(new Error('the leader session ended')))
  }

  /** The session, once every earlier user released it. @throws when the session is lost. */
  connect(): Promise<PostgresPoolClient> {
    let release!: () => void
    const turn = new Promise<void>((r) => (release = r))
    const ready = this.tail.then(() => {
      if (this.failure) {
        release()
        throw this.failure
      }
    })
    this.tail = this.tail.then(() => turn)
    const query = preparedQuery(this.client)
    const failure = () => this.failure
    return ready.then(() => ({
      processID: (this.client as unknown as { processID?: number }).processID,
      query: ((...args: Parameters<typeof query>) => {
        const lost = failure()
        return lost ? Promise.reject(lost) : query(...args)
      }) as typeof query,
      release: () => release(),
    }))
  }

  /** `select 1` in the session's turn, answered within `timeoutMs`, else the session counts as lost. */
  async probe(timeoutMs: number): Promise<void> {
    let conn: PostgresPoolClient | undefined
    try {
      conn = await this.connect()
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`the leader session did not answer within ${timeoutMs} ms`)), timeoutMs)),
      )
      await Promise.race([conn.query('select 1', []), late]).finally(() => clearTimeout(timer))
    } catch (err) {
      this.markLost(err as Error)
      this.close()
    } finally {
      conn?.release()
    }
  }

  /** Releases the leader lock (before a clean end, so a standby takes over at once); nothing when the session is lost. */
  async unlockAll(): Promise<void> {
    if (this.failure) return
    const conn = await this.connect().catch(() => undefined)
    try {
      await conn?.query('select pg_advisory_unlock_all()', [])
    } catch {
      // lost meanwhile: the server released the lock with the session
    } finally {
      conn?.release()
    }
  }

  /** Ends the session (the server releases its locks). */
  close(): void {
    this.markLost(new Error('the leader session was closed'))
    this.client.end().catch(() => {})
  }

  async end(): Promise<void> {
    this.close()
  }
}

import { RepoVerificationError, cborToLexRecord, readCarWithRoot, verifyRepo } from '@atproto/repo'
import PQueue from 'p-queue'
import { collections } from '../collections/index.js'
import type { IndexDb } from '../db/index.js'
import type { Logger } from '../log.js'
import type { Identity } from './identity.js'
import { httpOrigin } from '../config.js'
import { OWN_PDS, collectionOf, removeRepo, setStatus, type Indexer, type PutOp, type QuarantineOp } from './indexer.js'
import { metrics } from './metrics.js'
import { httpUrl } from './subscription.js'

export interface BackfillOptions {
  db: IndexDb
  indexer: Indexer
  identity: Identity
  log: Logger
  /** Verify each repo's commit signature (its MST is always checked). Default true. */
  verify: boolean
  /** getRepo requests at once per PDS host. */
  concurrencyPerHost: number
  /** Attempts per repo before it is marked failed (operators see the error). */
  maxAttempts?: number
  /** Largest repo CAR fetched, in bytes. */
  maxRepoBytes?: number
}

/** Backfill progress of one host, as /xrpc/_health reports it. */
export interface BackfillProgress {
  source: string
  status: string
  reason: string
  startedAt: string
  finishedAt: string | null
  pending: number
  done: number
  failed: number
}

const PAGE = 1000
/** DID resolutions at once during a backfill (PLC and handle lookups, across all hosts). */
const RESOLVE_CONCURRENCY = 16

/**
 * Backfill: discovers the repos of a firehose host (`com.atproto.sync.listReposByCollection` for
 * each AC collection on a relay, else `com.atproto.sync.listRepos`), fetches each with
 * `com.atproto.sync.getRepo` from the repo's own PDS, verifies it (commit signature against the
 * DID's signing key, MST structure and block hashes, by `@atproto/repo`), and makes the index
 * match it (Indexer.applySnapshot). Progress is kept per repo in the `repo` table and per host in
 * `backfill`, so an interrupted run resumes. At most `concurrencyPerHost` fetches per PDS at once.
 *
 * Hand-over to the live stream: a run only starts once the host's stream is connected, so every
 * commit missing from a snapshot is delivered live; live commits at or below a repo's snapshot
 * rev are skipped, and a snapshot older than applied live commits is fetched again.
 */
export class Backfiller {
  /** Fetch queues by PDS host. */
  private readonly queues = new Map<string, PQueue>()
  private readonly resolving = new PQueue({ concurrency: RESOLVE_CONCURRENCY })
  private readonly running = new Map<string, Promise<void>>()
  private stopped = false
  private readonly stopping = new AbortController()

  constructor(private readonly opts: BackfillOptions) {}

  /**
   * Runs (`fresh`: starts over) or resumes the backfill of `source`, after the run in progress in
   * this process if there is one (a request during a run, e.g. after a host reset, must not be
   * folded into a run that listed the repos before it). Resolves when done; never rejects.
   */
  run(source: string, reason: string, fresh: boolean): Promise<void> {
    const previous = this.running.get(source) ?? Promise.resolve()
    const run: Promise<void> = previous
      .then(() => this.executeWithRetry(source, reason, fresh))
      .finally(() => {
        if (this.running.get(source) === run) this.running.delete(source)
      })
    this.running.set(source, run)
    return run
  }

  /** Whether `source` has a backfill that started and did not finish (crash, stop). */
  async unfinished(source: string): Promise<boolean> {
    const row = await this.opts.db.selectFrom('backfill').select('status').where('source', '=', source).executeTakeFirst()
    return row?.status === 'running'
  }

  /** Fetches one repo again (after a #sync event or a commit that failed verification). */
  resync(did: string, source: string): Promise<void> {
    return this.repo(did, source)
  }

  /** Resolves when no run is going and no repo is queued. */
  async idle(): Promise<void> {
    const queues = () => [this.resolving, ...this.queues.values()]
    while (this.running.size || queues().some((q) => q.size || q.pending)) {
      await Promise.all([...this.running.values(), ...queues().map((q) => q.onIdle())])
    }
  }

  /** Stops taking new repos; resolves when the ones in flight are done. */
  async stop(): Promise<void> {
    this.stopped = true
    this.stopping.abort() // queued repos see `stopped` and return at once
    await Promise.all([...this.running.values(), ...[...this.queues.values()].map((q) => q.onIdle())])
  }

  /** Per-host progress of every backfill this index has run. */
  static async progress(db: IndexDb): Promise<BackfillProgress[]> {
    const runs = await db.selectFrom('backfill').selectAll().execute()
    const counts = await db.selectFrom('repo').select(['source', 'state', (eb) => eb.fn.countAll<number>().as('n')]).where('state', 'is not', null).groupBy(['source', 'state']).execute()
    const count = (source: string, state: string) => Number(counts.find((c) => c.source === source && c.state === state)?.n ?? 0)
    return runs.map((r) => ({ ...r, pending: count(r.source, 'pending'), done: count(r.source, 'done'), failed: count(r.source, 'failed') }))
  }

  /** {@link execute}, resumed after a failure (host unreachable…) with a growing wait, until stopped. */
  private async executeWithRetry(source: string, reason: string, fresh: boolean): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        return await this.execute(source, reason, fresh && attempt === 1)
      } catch (err) {
        const waitMs = Math.min(5_000 * 2 ** (attempt - 1), 300_000)
        this.opts.log.error({ source, err: (err as Error).message, retryInSeconds: waitMs / 1000 }, 'backfill failed; resuming it later')
        await new Promise<void>((r) => {
          const timer = setTimeout(r, waitMs)
          this.stopping.signal.addEventListener('abort', () => (clearTimeout(timer), r()), { once: true })
        })
      }
    }
  }

  private async execute(source: string, reason: string, fresh: boolean): Promise<void> {
    const { db, log } = this.opts
    if (this.stopped) return
    const started = Date.now()
    if (fresh || !(await this.unfinished(source))) await this.begin(source, reason)
    log.info({ source, reason }, 'backfill starting')
    const listed = await this.discover(source)
    const pending = await db.selectFrom('repo').select('did').where('source', '=', source).where('state', '=', 'pending').execute()
    await this.updateGauges(source)
    await Promise.all(pending.map(({ did }) => this.repo(did, source)))
    if (this.stopped) return
    await this.removeGone(source, listed, started)
    await db.updateTable('backfill').set({ status: 'done', finishedAt: new Date().toISOString() }).where('source', '=', source).execute()
    await this.updateGauges(source)
    log.info({ source, repos: listed.size, seconds: (Date.now() - started) / 1000 }, 'backfill done')
  }

  /** Starts a new run of `source` (status running): every repo of `source` leaves the previous run's state. */
  async begin(source: string, reason: string): Promise<void> {
    const now = new Date().toISOString()
    await this.opts.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('backfill')
        .values({ source, status: 'running', reason, startedAt: now, finishedAt: null })
        .onConflict((oc) => oc.column('source').doUpdateSet({ status: 'running', reason, startedAt: now, finishedAt: null }))
        .execute()
      await trx.updateTable('repo').set({ state: null, attempts: 0, error: null }).where('source', '=', source).execute()
    })
  }

  /**
   * Lists the host's repos into `repo` (state 'pending' unless done in this run); inactive repos
   * are recorded as such on their actor and not fetched. Idempotent, so a resumed run lists again.
   * @returns the DIDs listed.
   */
  private async discover(source: string): Promise<Set<string>> {
    const base = httpUrl(source)
    const listed = new Set<string>()
    const byCollection = await this.listByCollection(base, listed)
    if (!byCollection) await this.listRepos(base, source, listed)
    const now = new Date().toISOString()
    for (const chunk of chunks([...listed], 500)) {
      await this.opts.db
        .insertInto('repo')
        .values(chunk.map((did) => ({ did, source, rev: null, state: 'pending', attempts: 0, error: null, updatedAt: now })))
        .onConflict((oc) => oc.column('did').doUpdateSet((eb) => ({ source, state: eb.fn.coalesce('repo.state', eb.val('pending')) })))
        .execute()
    }
    return listed
  }

  /** `listReposByCollection` for each AC NSID (relays); false when the host does not serve it. */
  private async listByCollection(base: string, listed: Set<string>): Promise<boolean> {
    for (const col of collections) {
      let cursor: string | undefined
      do {
        const res = await getJson(`${base}/xrpc/com.atproto.sync.listReposByCollection`, { collection: col.nsid, limit: String(PAGE), cursor })
        if (!res) return false
        const page = res as { repos?: Array<{ did: string }>; cursor?: string }
        for (const r of page.repos ?? []) listed.add(r.did)
        cursor = page.repos?.length ? page.cursor : undefined
      } while (cursor && !this.stopped)
    }
    return true
  }

  /**
   * `listRepos` (a PDS): every repo, with its status; inactive ones are marked on their actor,
   * as far as the host speaks for them (the repo's own PDS or a trusted relay), else as their own
   * PDS confirms (see Provenance): a host cannot hide other hosts' accounts by listing them.
   */
  private async listRepos(base: string, source: string, listed: Set<string>): Promise<void> {
    const { provenance } = this.opts.indexer
    let cursor: string | undefined
    do {
      const res = await getJson(`${base}/xrpc/com.atproto.sync.listRepos`, { limit: String(PAGE), cursor })
      if (!res) throw new Error(`${base} serves neither listReposByCollection nor listRepos`)
      const page = res as { repos?: Array<{ did: string; active?: boolean; status?: string }>; cursor?: string }
      for (const r of page.repos ?? []) {
        if (r.active !== false) listed.add(r.did)
        else if (await provenance.speaksFor(httpOrigin(base), r.did)) await this.markInactive(r.did, source, r.status ?? 'deactivated')
        else {
          const confirmed = await provenance.accountStatus(r.did)
          if (confirmed?.status) await this.markInactive(r.did, source, confirmed.status)
          else if (confirmed) listed.add(r.did)
        }
      }
      cursor = page.repos?.length ? page.cursor : undefined
    } while (cursor && !this.stopped)
  }

  private async markInactive(did: string, source: string, status: string): Promise<void> {
    const now = new Date().toISOString()
    await this.opts.db.transaction().execute((trx) => setStatus(trx, did, status, now))
    await this.opts.db
      .insertInto('repo')
      .values({ did, source, rev: null, state: 'done', attempts: 0, error: null, updatedAt: now })
      .onConflict((oc) => oc.column('did').doUpdateSet({ state: 'done', updatedAt: now }))
      .execute()
  }

  /**
   * A repo the host no longer lists is gone from it: when the host is a PDS and the actor's
   * PDS is that host and no live commit touched it during the run, its records leave the index. (A relay lists only repos with AC records,
   * but cannot prove a repo has none, so nothing is removed on a relay's word.)
   */
  private async removeGone(source: string, listed: Set<string>, since: number): Promise<void> {
    const origin = new URL(httpUrl(source)).origin
    const candidates = await this.opts.db
      .selectFrom('repo')
      .innerJoin('actor', 'actor.did', 'repo.did')
      .select('repo.did')
      .where('repo.source', '=', source)
      .where('repo.state', 'is', null)
      .where('repo.updatedAt', '<', new Date(since).toISOString()) // untouched by live commits during the run
      .where('actor.pds', '=', origin)
      .where('actor.status', 'is', null)
      .execute()
    for (const { did } of candidates.filter((c) => !listed.has(c.did))) {
      await this.opts.db.transaction().execute((trx) => removeRepo(trx, did))
      this.opts.log.info({ did, source }, 'repo no longer on its PDS: removed from the index')
    }
  }

  /** Backfills one repo, retrying a stale snapshot; records the outcome on its `repo` row. */
  private async repo(did: string, source: string): Promise<void> {
    if (this.stopped) return
    try {
      for (let i = 0; i < 3; i++) {
        if ((await this.fetchAndApply(did, source)) !== 'stale') return
      }
      throw new Error('repo kept changing while being fetched')
    } catch (err) {
      await this.recordFailure(did, (err as Error).message)
    } finally {
      void this.updateGauges(source)
    }
  }

  /**
   * Resolves the repo's DID (at most {@link RESOLVE_CONCURRENCY} at once), then fetches, verifies
   * and applies it in the queue of its PDS host (`concurrencyPerHost` at once per host).
   */
  private async fetchAndApply(did: string, source: string): Promise<'stale' | 'ok'> {
    const { indexer } = this.opts
    const actor = await this.resolving.add(() => indexer.actorOps(did, { from: OWN_PDS, refresh: true })) // fetched from that PDS below
    const pds = actor[0]?.type === 'actor' ? actor[0].pds : null
    if (!pds) throw new Error('DID has no PDS (could not resolve it)')
    return this.queueFor(pds).add(async () => {
      if (this.stopped) return 'ok'
      const bytes = await fetchRepo(pds, did, this.opts.maxRepoBytes ?? 512 * 1024 * 1024)
      const { rev, ops } = await this.verifiedRecords(did, bytes)
      const result = await indexer.applySnapshot(did, source, rev, ops, actor)
      if (result !== 'stale') this.opts.log.debug({ did, rev, ...result }, 'repo backfilled')
      return result === 'stale' ? 'stale' : 'ok'
    })
  }

  /**
   * Verifies a repo CAR and returns its AC records as index operations.
   * @throws RepoVerificationError when the signature (after one key refresh) or the MST is wrong.
   */
  private async verifiedRecords(did: string, bytes: Uint8Array): Promise<{ rev: string; ops: Array<PutOp | QuarantineOp> }> {
    const car = await readCarWithRoot(bytes)
    const verified = await this.verifyWithKey(did, car)
    const ops: Array<PutOp | QuarantineOp> = []
    for (const c of verified.creates) {
      const col = collectionOf(c.collection)
      const block = col && car.blocks.get(c.cid)
      if (!col || !block) continue
      ops.push(this.opts.indexer.recordOp(col, did, c.rkey, c.cid.toString(), verified.commit.rev, cborToLexRecord(block)))
    }
    return { rev: verified.commit.rev, ops }
  }

  private async verifyWithKey(did: string, car: Awaited<ReturnType<typeof readCarWithRoot>>, refresh = false): ReturnType<typeof verifyRepo> {
    if (!this.opts.verify) return verifyRepo(car.blocks, car.root, did)
    const key = await this.opts.identity.resolver.did.resolveAtprotoKey(did, refresh)
    try {
      return await verifyRepo(car.blocks, car.root, did, key)
    } catch (err) {
      if (err instanceof RepoVerificationError && !refresh) return this.verifyWithKey(did, car, true)
      throw err
    }
  }

  private async recordFailure(did: string, error: string): Promise<void> {
    const row = await this.opts.db.selectFrom('repo').select('attempts').where('did', '=', did).executeTakeFirst()
    const attempts = (row?.attempts ?? 0) + 1
    const state = attempts >= (this.opts.maxAttempts ?? 3) ? 'failed' : 'pending'
    await this.opts.db.updateTable('repo').set({ attempts, error, state, updatedAt: new Date().toISOString() }).where('did', '=', did).execute()
    this.opts.log.warn({ did, attempts, state, err: error }, 'repo backfill failed')
    if (state === 'pending' && !this.stopped) await new Promise((r) => setTimeout(r, 1000 * attempts))
    if (state === 'pending' && !this.stopped) return this.repo(did, (await this.sourceOf(did)) ?? '')
  }

  private async sourceOf(did: string): Promise<string | undefined> {
    return (await this.opts.db.selectFrom('repo').select('source').where('did', '=', did).executeTakeFirst())?.source
  }

  /** The fetch queue of one PDS host (origin). */
  private queueFor(host: string): PQueue {
    let q = this.queues.get(host)
    if (!q) this.queues.set(host, (q = new PQueue({ concurrency: this.opts.concurrencyPerHost })))
    return q
  }

  private async updateGauges(source: string): Promise<void> {
    const [p] = (await Backfiller.progress(this.opts.db).catch(() => [])).filter((r) => r.source === source)
    if (!p) return
    for (const state of ['pending', 'done', 'failed'] as const) metrics.backfillRepos.set({ service: source, state }, p[state])
  }
}

/**
 * GET `url` with `params`; the JSON body, or null when the host answers 4xx/5xx for the method
 * (not implemented, or a PDS proxying it nowhere).
 * @throws on network errors.
 */
async function getJson(url: string, params: Record<string, string | undefined>): Promise<unknown | null> {
  const u = new URL(url)
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v)
  const res = await fetch(u, { signal: AbortSignal.timeout(60_000) })
  if (!res.ok) {
    await res.body?.cancel()
    return null
  }
  return res.json()
}

/**
 * `com.atproto.sync.getRepo` from the repo's PDS: the whole repo as CAR bytes.
 * @throws Error with the host's error name (RepoNotFound, RepoTakendown…) or when larger than `maxBytes`.
 */
async function fetchRepo(pds: string, did: string, maxBytes: number): Promise<Uint8Array> {
  const url = new URL('/xrpc/com.atproto.sync.getRepo', pds)
  url.searchParams.set('did', did)
  const res = await fetch(url, { signal: AbortSignal.timeout(300_000) })
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string }
    throw new Error(`getRepo ${res.status} ${body.error ?? ''} ${body.message ?? ''}`.trim())
  }
  if (Number(res.headers.get('content-length') ?? 0) > maxBytes) throw new Error(`repo larger than ${maxBytes} bytes`)
  const bytes = new Uint8Array(await res.arrayBuffer())
  if (bytes.byteLength > maxBytes) throw new Error(`repo larger than ${maxBytes} bytes`)
  return bytes
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

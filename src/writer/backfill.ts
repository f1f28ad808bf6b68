import type { Db, Document, Filter } from 'mongodb'
import PQueue from 'p-queue'
import { DocError, mirrored, readDoc, type MirroredCollection, type Kind, type SourceItem, type WriterContext } from '../collections/index.js'
import type { Logger } from '../log.js'
import { loadAccounts, type Account } from './accounts.js'
import { applyPlan, type ApplyOptions } from './apply.js'
import type { Ledger } from './ledger.js'
import { planRepo, writesToPds, type Planned } from './plan.js'
import { pdsFailure, type RepoClient, type RepoRecord } from './repo.js'
import { RunRecorder, type BackfillReport } from './report.js'
import { Sessions } from './sessions.js'

export { ACTIONS, type Action, type BackfillReport, type Outcome } from './report.js'

/** Which MongoDB items to consider. */
export interface Selection {
  only?: Kind[]
  /** Only these owners (`users._id`). */
  users?: string[]
  /** Only anonymous items (the guest repo). */
  anonymous?: boolean
  /** Only items whose `when` is at or after this date. */
  since?: Date
  /** At most this many items, oldest first. */
  limit?: number
}

export interface WriterOptions extends Selection {
  db: Db
  pdsUrl: string
  ctx: WriterContext
  log: Logger
  /** Repos handled at once. */
  concurrency: number
  /** `users._id` of AC's guest account, which owns anonymous items (AC: `art-guest`). */
  guestUser: string
  ledger?: Ledger
  /** Attempts after a network error or 5xx before a PDS call fails (WRITER_RETRIES). */
  retries?: number
  /** Logged-in clients to reuse (live mode keeps one per account for its whole life); default: this run's own. */
  sessions?: Sessions
  /** Called after each repo, for progress displays. */
  onProgress?(done: number, total: number, itemsDone: number, itemsTotal: number): void
}

export interface BackfillOptions extends WriterOptions {
  /** Plan only: nothing is uploaded, written to the PDS or written to MongoDB. */
  dryRun?: boolean
  /** Continue an interrupted run with the same selection, skipping the repos it finished (default true). */
  resume?: boolean
}

/** One repo's owner and items. */
export interface RepoJob {
  account: Account
  items: Array<{ col: MirroredCollection; item: SourceItem }>
}

/**
 * `writer backfill`: makes every selected repo match MongoDB. Creates missing records at their
 * rkeys, updates drifted ones in place, deletes records of nuked/deleted items, duplicates by
 * `ref` and (for unfiltered runs) orphans, then writes back-references, batch by batch
 * ({@link applyPlan}). Every account in `users.atproto` and the guest account is visited, with
 * items or not, so orphans in a repo whose owner has no items left are found too. Running it
 * twice changes nothing the second time; a killed run resumes: the next run with the same
 * selection skips the repos the killed one finished and, within a repo, finds the batches it
 * wrote unchanged. A bad document or failing item is reported and never stops the run.
 */
export async function backfill(opts: BackfillOptions): Promise<BackfillReport> {
  const started = Date.now()
  const recorder = new RunRecorder(!!opts.dryRun, opts.ledger, opts.log)
  const ledger = opts.dryRun ? undefined : opts.ledger
  const selection = selectionKey(opts)
  const resume = opts.resume === false ? undefined : ledger?.resumable('backfill', selection)
  const runId = ledger?.startRun('backfill', selection, resume?.runId)
  if (resume && runId !== undefined) {
    ledger!.inheritRepos(runId, resume.runId)
    recorder.report.resumed = { runId: resume.runId, repos: resume.doneRepos.size }
    opts.log.info({ resumedRun: resume.runId, reposDone: resume.doneRepos.size }, 'resuming an interrupted backfill')
  }
  const { sessions, owned } = sessionsOf(opts)
  try {
    recorder.report.repos = await forEachRepo(opts, recorder, sessions, resume?.doneRepos, async (job, repo) => {
      const planned = await planRepo(job.items, repo.records, opts.ctx, isComplete(opts))
      recorder.report.backrefsWritten += await applyPlan(job.account, await clientFor(repo, planned, opts.dryRun), planned, applyOptions(opts, recorder))
      if (runId !== undefined) {
        ledger!.repoDone(runId, job.account.did)
        ledger!.updateRun(runId, recorder.flatCounts())
      }
    })
  } finally {
    recorder.report.durationMs = Date.now() - started
    if (runId !== undefined) ledger!.finishRun(runId, recorder.flatCounts())
    ledger?.pruneProblems()
    if (owned) sessions.close()
  }
  return recorder.report
}

/** What {@link applyPlan} needs from writer options. */
export function applyOptions(opts: WriterOptions & { dryRun?: boolean }, recorder: RunRecorder, extra: Partial<ApplyOptions> = {}): ApplyOptions {
  return { db: opts.db, ctx: opts.ctx, ledger: opts.dryRun ? undefined : opts.ledger, recorder, dryRun: opts.dryRun, log: opts.log, ...extra }
}

/** The options a run was asked for, as the ledger compares them to resume. */
function selectionKey(sel: Selection): Record<string, unknown> {
  return { only: sel.only ?? null, users: sel.users ?? null, anonymous: !!sel.anonymous, since: sel.since?.toISOString() ?? null, limit: sel.limit ?? null }
}

/** Unfiltered runs see every item of an owner, so a record with no live item is an orphan. */
export function isComplete(sel: Selection): boolean {
  return !sel.since && !sel.limit
}

/** The caller's sessions, or new ones the caller must close. */
export function sessionsOf(opts: WriterOptions): { sessions: Sessions; owned: boolean } {
  return opts.sessions ? { sessions: opts.sessions, owned: false } : { sessions: new Sessions(opts.pdsUrl, opts.log, opts.retries), owned: true }
}

/**
 * Loads accounts and items, then runs `work` for each repo (skipping the DIDs in `skip`) with
 * every record of the selected kinds, read without logging in, and a way to log in
 * ({@link OpenRepo}), `concurrency` repos at once, the largest first; each repo is listed as the
 * repo `concurrency` places before it starts, so at most `concurrency` repos wait opened. A repo
 * that fails as a whole (listing or login refused, PDS down past the retries) is one problem for
 * the repo, its items counted failed; the others go on. Returns the repos handled.
 */
export async function forEachRepo(
  opts: WriterOptions,
  recorder: RunRecorder,
  sessions: Sessions,
  skip: Set<string> | undefined,
  work: (job: RepoJob, repo: OpenRepo) => Promise<void>,
): Promise<number> {
  const accounts = await loadAccounts(opts.db, opts.log)
  const jobs = (await collectJobs(opts, accounts, recorder)).filter((j) => !skip?.has(j.account.did))
  recorder.flush()
  const itemsTotal = jobs.reduce((n, j) => n + j.items.length, 0)
  opts.log.info({ repos: jobs.length, items: itemsTotal, ...(skip?.size ? { skippedAsDone: skip.size } : {}) }, 'repos to compare')
  const queue = new PQueue({ concurrency: opts.concurrency })
  // Each repo is opened (login, listing) while the `concurrency` repos before it are still being
  // worked on, so the PDS's password hashing and the listings overlap their writes.
  const opened = new Map<RepoJob, Promise<OpenRepo>>()
  const open = (job: RepoJob): Promise<OpenRepo> => {
    let repo = opened.get(job)
    if (!repo) {
      opened.set(job, (repo = openRepo(opts, sessions, job)))
      repo.catch(() => {}) // reported when the repo's turn comes
    }
    return repo
  }
  let done = 0
  let itemsDone = 0
  jobs.forEach((job, i) => {
    void queue.add(async () => {
      const next = jobs[i + opts.concurrency]
      if (next) void open(next)
      try {
        const repo = await open(job)
        recorder.repoWorked(job.account.did)
        await work(job, repo)
      } catch (err) {
        const reason = (err as Error).message
        opts.log.error({ repo: job.account.did, items: job.items.length, err: reason }, 'repo failed')
        recorder.repoFailed(
          { did: job.account.did, name: job.account.handle ?? job.account.did },
          job.items.map((i) => i.col),
          reason,
        )
      }
      opened.delete(job)
      recorder.flush()
      itemsDone += job.items.length
      opts.onProgress?.(++done, jobs.length, itemsDone, itemsTotal)
    })
  })
  await queue.onIdle()
  return jobs.length
}

/** A repo as {@link forEachRepo} hands it over: read, not yet logged into. */
export interface OpenRepo {
  /** Reads the repo without a session ({@link RepoClient.reader}). */
  reader: RepoClient
  /** Every record of the selected kinds, by collection and rkey. */
  records: Map<MirroredCollection, Map<string, RepoRecord>>
  /** The account's logged-in client (made once per run and account by {@link Sessions}). @throws when the PDS refuses the login. */
  login(): Promise<RepoClient>
}

/** A repo's records of the selected kinds, listed without logging in (AC has hundreds of accounts with nothing to write). */
async function openRepo(opts: WriterOptions, sessions: Sessions, job: RepoJob): Promise<OpenRepo> {
  const reader = sessions.reader(job.account)
  const records = await listRepo(reader, selectedKinds(opts, job.account.user === opts.guestUser)).catch((err) => {
    throw pdsFailure(`listing repo ${job.account.did}`, err)
  })
  return { reader, records, login: () => sessions.get(job.account) }
}

/**
 * The client to carry out `planned` with: the repo's reader when the plan writes nothing to the
 * PDS (a dry run, or a repo in sync: only back-references in MongoDB, if any), so no login is
 * made; otherwise the logged-in client.
 * @throws when the PDS refuses the login (the repo fails as a whole, as {@link forEachRepo} reports).
 */
export async function clientFor(repo: OpenRepo, planned: Planned[], dryRun?: boolean): Promise<RepoClient> {
  return planned.some(writesToPds) && !dryRun ? repo.login() : repo.reader
}

/** Every record of `kinds` in the repo, by collection and rkey (`describeRepo` first: empty collections cost nothing). */
export async function listRepo(client: RepoClient, kinds: MirroredCollection[]): Promise<Map<MirroredCollection, Map<string, RepoRecord>>> {
  const present = await client.collections()
  const records = new Map<MirroredCollection, Map<string, RepoRecord>>()
  for (const col of kinds) records.set(col, new Map(present.has(col.nsid) ? (await client.listRecords(col.nsid)).map((r) => [r.rkey, r]) : []))
  return records
}

export function selectedKinds(sel: Selection, guest: boolean): MirroredCollection[] {
  return mirrored.filter((c) => (!sel.only || sel.only.includes(c.kind)) && (!guest || c.anonymous))
}

/** An item of the selection, before `--limit` picks the oldest. */
interface Candidate {
  when: number
  take(): void
}

/**
 * Reads every selected document, checks it and groups it under its repo. Documents of owners
 * without a PDS account are reported skipped, malformed ones invalid; with `--limit` only the
 * oldest items count, problems included. Accounts without items get a job too (unless the
 * selection is partial), so their repos are checked for orphans.
 */
export async function collectJobs(opts: WriterOptions, accounts: Map<string, Account>, recorder: RunRecorder): Promise<RepoJob[]> {
  const jobs = new Map<string, RepoJob>()
  const guest = accounts.get(opts.guestUser)
  const candidates: Candidate[] = []
  for (const col of selectedKinds(opts, !!opts.anonymous)) {
    const filter: Filter<Document> = {
      ...(opts.anonymous ? { user: { $exists: false } } : opts.users ? { user: { $in: opts.users } } : {}),
      ...(opts.since ? { when: { $gte: opts.since } } : {}),
    }
    for await (const doc of opts.db.collection(col.mongo).find(filter).batchSize(1000)) {
      if (col.mirrors?.(doc) !== false) candidates.push(candidate(col, doc, opts, accounts, guest, jobs, recorder))
    }
  }
  if (opts.limit) candidates.sort((a, b) => a.when - b.when).splice(opts.limit)
  for (const c of candidates) c.take()
  if (isComplete(opts)) {
    for (const account of accounts.values()) {
      const wanted = opts.anonymous ? account === guest : !opts.users || opts.users.includes(account.user)
      if (wanted && !jobs.has(account.did)) jobs.set(account.did, { account, items: [] })
    }
  }
  return [...jobs.values()].sort((a, b) => b.items.length - a.items.length)
}

function candidate(
  col: MirroredCollection,
  doc: Document,
  opts: WriterOptions,
  accounts: Map<string, Account>,
  guest: Account | undefined,
  jobs: Map<string, RepoJob>,
  recorder: RunRecorder,
): Candidate {
  const rawWhen = doc.when instanceof Date ? doc.when.getTime() : Number.MAX_SAFE_INTEGER
  const owner = typeof doc.user === 'string' ? doc.user : null
  const account = owner ? accounts.get(owner) : guest
  const repo = account ? (account.handle ?? account.did) : (owner ?? opts.guestUser)
  let item: SourceItem
  try {
    item = readDoc(col, doc)
  } catch (err) {
    if (!(err instanceof DocError)) throw err
    return {
      when: rawWhen,
      take: () => recorder.item({ kind: col.kind, id: String(doc._id), repo, action: 'invalid', reason: err.message, ...(account ? {} : { private: true }) }),
    }
  }
  return {
    when: item.when.getTime(),
    take() {
      if (!account) {
        if (item.live) recorder.item({ kind: col.kind, id: item.id, repo, action: 'skipped', reason: 'owner has no PDS account', private: true })
        return
      }
      const job = jobs.get(account.did) ?? { account, items: [] }
      job.items.push({ col, item })
      jobs.set(account.did, job)
    },
  }
}

/** Keys of a plan for the live mode's bookkeeping: `collection id`. */
export function plannedKey(p: Planned): string {
  return `${p.col.mongo} ${p.item?.id ?? ''}`
}

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import SqliteDb from 'better-sqlite3'
import type { ProblemGroup, WriterStatus } from './status.js'

/** How long a problem no run has seen again is kept (the item was removed, or its owner left). */
const PROBLEM_RETENTION_DAYS = 30
/** Most problem rows kept: past this, those seen longest ago go first. AC has about 25,000 items. */
const MAX_PROBLEMS = 200_000
/** A run whose process has not written for this long is taken as interrupted (another host's, or a hung one). */
const STALE_RUN_MS = 10 * 60_000
/** An interrupted run older than this is not resumed: a fresh run compares everything again. */
const RESUME_WITHIN_MS = 24 * 3_600_000
/** Examples kept per problem group in status answers. */
const EXAMPLES_PER_GROUP = 3

/** Ledger schema version (`PRAGMA user_version`); version 1 had one problem row per run and occurrence. */
const SCHEMA_VERSION = 2

/** An item (or a whole repo) the writer could not mirror as asked, as the ledger keeps it. */
export interface Problem {
  /** The item's kind, or `repo` when a whole repo failed (login refused, PDS down). */
  kind: string
  /** MongoDB `_id` as hex; the DID for a repo problem. */
  id: string
  /** Handle or DID of the repo; the owner's `users._id` when it has no PDS account. */
  repo: string
  action: 'skipped' | 'invalid' | 'failed' | 'warning'
  /** Why, in words that do not name the item, so problems group by it (e.g. `owner has no PDS account`). */
  reason: string
  /** Item-specific particulars (a URL, a field value), if any. */
  detail?: string
  /** True when `repo` and `id` identify a person without a PDS account: never logged above debug, never public. */
  private?: boolean
}

export interface ProblemRow extends Problem {
  firstSeen: string
  lastSeen: string
  /** Times a run (or a live change) found it. */
  count: number
}

type RunStatus = 'running' | 'finished' | 'interrupted'

interface RunRow {
  id: number
  mode: string
  options: string
  startedAt: string
  finishedAt: string | null
  status: RunStatus
  counts: string
  backlog: number | null
  pid: number
  host: string
  heartbeatAt: string
  resumedFrom: number | null
}

/**
 * The writer's own SQLite ledger (`$DATA_DIR/writer.sqlite`, see the README's Writer section):
 * - runs with their counts and status (`running`, `finished`, or `interrupted` when the process
 *   died), and the repos each run finished, so a killed backfill resumes where it stopped;
 * - problems, one row per item and reason with first and last seen and a count, kept while they
 *   stay true (cleared when the item later succeeds, dropped after {@link PROBLEM_RETENTION_DAYS}
 *   unseen), so weeks of live mode stay readable and bounded;
 * - where each item's record was written (live mode deletes the record of a removed document);
 * - the blobs uploaded to each repo (by CID), so a restart never uploads one twice;
 * - key/value state such as the change stream's resume token.
 * MongoDB back-references and the PDS stay the source of truth for what is mirrored.
 */
export class Ledger {
  private readonly db: SqliteDb.Database
  private readonly host = os.hostname()
  private readonly statements = new Map<string, SqliteDb.Statement>()

  /** Opens (creating or upgrading) `<dataDir>/writer.sqlite`. */
  constructor(dataDir: string) {
    fs.mkdirSync(dataDir, { recursive: true })
    this.db = new SqliteDb(path.join(dataDir, 'writer.sqlite'))
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('busy_timeout = 5000')
    this.migrate()
  }

  private migrate() {
    const version = this.db.pragma('user_version', { simple: true }) as number
    if (version >= SCHEMA_VERSION) return
    this.db.transaction(() => {
      if (version === 1 || this.hasTable('run')) {
        // Version 1: problems per run (a history, not a state) and runs without status; start afresh.
        this.db.exec('drop table if exists problem; drop table if exists run')
      }
      this.db.exec(`
        create table run (
          id integer primary key, mode text not null, options text not null default '{}',
          startedAt text not null, finishedAt text, status text not null default 'running',
          counts text not null default '{}', backlog integer,
          pid integer not null, host text not null, heartbeatAt text not null, resumedFrom integer
        );
        create table if not exists run_repo (runId integer not null, did text not null, primary key (runId, did));
        create table problem (
          kind text not null, id text not null, reason text not null, action text not null, repo text not null,
          detail text, private integer not null default 0, firstSeen text not null, lastSeen text not null, count integer not null,
          pattern text not null, primary key (kind, id, reason)
        );
        create index problem_lastSeen on problem (lastSeen);
        create index problem_pattern on problem (action, pattern);
        create table if not exists state (key text primary key, value text not null);
        create table if not exists mirror (collection text not null, id text not null, did text not null, rkey text not null, primary key (collection, id));
        create table if not exists blob (did text not null, cid text not null, ref text not null, primary key (did, cid));
      `)
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`)
    })()
  }

  /** The statement for `source`, compiled once per ledger: a backfill runs some of them thousands of times. */
  private sql(source: string): SqliteDb.Statement {
    let statement = this.statements.get(source)
    if (!statement) this.statements.set(source, (statement = this.db.prepare(source)))
    return statement
  }

  private hasTable(name: string): boolean {
    return this.sql("select 1 from sqlite_master where type = 'table' and name = ?").get(name) !== undefined
  }

  // ---- runs ----

  /**
   * Starts a run of `mode` (`backfill`, `live`, `audit`…) with the selection `options` it was
   * asked for; first marks runs whose process died as interrupted ({@link markInterrupted}).
   */
  startRun(mode: string, options: Record<string, unknown> = {}, resumedFrom?: number): number {
    this.markInterrupted()
    const now = new Date().toISOString()
    const info = this.db
      .prepare('insert into run (mode, options, startedAt, status, pid, host, heartbeatAt, resumedFrom) values (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(mode, JSON.stringify(options), now, 'running', process.pid, this.host, now, resumedFrom ?? null)
    return Number(info.lastInsertRowid)
  }

  /**
   * Marks as `interrupted` every run still `running` whose process is gone: on this host, a PID
   * that no longer exists; elsewhere, no heartbeat for {@link STALE_RUN_MS}. Called by every new
   * run and by every status read, so a killed run never shows as running for long.
   */
  markInterrupted(): void {
    const running = this.sql("select id, pid, host, heartbeatAt from run where status = 'running'").all() as Array<
      Pick<RunRow, 'id' | 'pid' | 'host' | 'heartbeatAt'>
    >
    const stale = Date.now() - STALE_RUN_MS
    for (const r of running) {
      const gone = r.host === this.host ? !processAlive(r.pid) : Date.parse(r.heartbeatAt) < stale
      if (gone) this.sql("update run set status = 'interrupted' where id = ?").run(r.id)
    }
  }

  /** Updates a run's counts (and live backlog) and its heartbeat. */
  updateRun(runId: number, counts: Record<string, number>, backlog?: number) {
    this.sql('update run set counts = ?, backlog = ?, heartbeatAt = ? where id = ?').run(
      JSON.stringify(counts),
      backlog ?? null,
      new Date().toISOString(),
      runId,
    )
  }

  /** Stamps a run's end: `finished`, or `interrupted` when it was stopped before its work was done. */
  finishRun(runId: number, counts: Record<string, number>, status: Exclude<RunStatus, 'running'> = 'finished') {
    const now = new Date().toISOString()
    this.sql('update run set counts = ?, status = ?, finishedAt = ?, heartbeatAt = ? where id = ?').run(JSON.stringify(counts), status, now, now, runId)
  }

  /**
   * The run a new run of `mode` with the same `options` should resume: the latest such run, when
   * it was interrupted less than {@link RESUME_WITHIN_MS} ago; with the repos it (and the runs it
   * resumed) finished.
   */
  resumable(mode: string, options: Record<string, unknown>): { runId: number; doneRepos: Set<string> } | undefined {
    this.markInterrupted()
    const last = this.sql('select id, options, status, heartbeatAt from run where mode = ? order by id desc limit 1').get(mode) as
      Pick<RunRow, 'id' | 'options' | 'status' | 'heartbeatAt'> | undefined
    if (!last || last.status !== 'interrupted' || last.options !== JSON.stringify(options)) return undefined
    if (Date.now() - Date.parse(last.heartbeatAt) > RESUME_WITHIN_MS) return undefined
    const rows = this.sql('select did from run_repo where runId = ?').pluck().all(last.id) as string[]
    return { runId: last.id, doneRepos: new Set(rows) }
  }

  /** Records that `runId` finished every item of repo `did` (a resumed run skips it). */
  repoDone(runId: number, did: string) {
    this.sql('insert or ignore into run_repo values (?, ?)').run(runId, did)
  }

  /** Carries the finished repos of an interrupted run over to the run resuming it. */
  inheritRepos(runId: number, from: number) {
    this.sql('insert or ignore into run_repo select ?, did from run_repo where runId = ?').run(runId, from)
  }

  // ---- problems ----

  /**
   * Records problems seen now: a new row per item and reason, or last seen and count bumped for
   * one already known; an item's rows for other reasons are dropped (its problem changed).
   * @returns the problems that are new, for the caller to log once.
   */
  recordProblems(problems: Problem[]): Problem[] {
    if (!problems.length) return []
    const now = new Date().toISOString()
    const bump = this.sql('update problem set lastSeen = ?, count = count + 1, repo = ?, detail = ?, action = ? where kind = ? and id = ? and reason = ?')
    const others = this.sql('delete from problem where kind = ? and id = ? and reason != ?')
    const insert = this.sql('insert into problem values (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)')
    const fresh: Problem[] = []
    this.db.transaction(() => {
      for (const p of problems) {
        if (bump.run(now, p.repo, p.detail ?? null, p.action, p.kind, p.id, p.reason).changes > 0) continue
        others.run(p.kind, p.id, p.reason)
        insert.run(p.kind, p.id, p.reason, p.action, p.repo, p.detail ?? null, p.private ? 1 : 0, now, now, reasonPattern(p.reason))
        fresh.push(p)
      }
    })()
    return fresh
  }

  /** Clears the problems of items (kind and MongoDB id) that have now been mirrored, and of repos (`repo`, DID) that worked. */
  resolveProblems(items: Array<{ kind: string; id: string }>) {
    if (!items.length) return
    const clear = this.sql('delete from problem where kind = ? and id = ?')
    this.db.transaction(() => {
      for (const i of items) clear.run(i.kind, i.id)
    })()
  }

  /** Drops problems unseen for {@link PROBLEM_RETENTION_DAYS}, then the oldest past {@link MAX_PROBLEMS}. */
  pruneProblems() {
    const cutoff = new Date(Date.now() - PROBLEM_RETENTION_DAYS * 86_400_000).toISOString()
    this.sql('delete from problem where lastSeen < ?').run(cutoff)
    this.sql('delete from problem where rowid in (select rowid from problem order by lastSeen desc limit -1 offset ?)').run(MAX_PROBLEMS)
  }

  /** Every problem row, most recently seen first. */
  problems(): ProblemRow[] {
    return (this.sql('select * from problem order by lastSeen desc, kind, id').all() as Array<ProblemRow & { private: number; detail: string | null }>).map(
      toProblemRow,
    )
  }

  /** Problems grouped by action and {@link reasonPattern}, largest group first, each with a few examples. */
  problemGroups(examples = EXAMPLES_PER_GROUP): ProblemGroup[] {
    const groups = this.db
      .prepare(
        'select action, pattern as reason, count(*) as items, max(lastSeen) as lastSeen, min(firstSeen) as firstSeen from problem group by action, pattern order by items desc, pattern',
      )
      .all() as Array<Omit<ProblemGroup, 'examples'>>
    const sample = this.sql('select * from problem where action = ? and pattern = ? order by lastSeen desc, kind, id limit ?')
    return groups.map((g) => ({
      ...g,
      examples: (sample.all(g.action, g.reason, examples) as Array<ProblemRow & { private: number; detail: string | null }>).map(toProblemRow),
    }))
  }

  // ---- mirrored records and uploaded blobs ----

  /** Remembers where an item's record was written. */
  remember(collection: string, id: string, did: string, rkey: string) {
    this.sql('insert into mirror values (?, ?, ?, ?) on conflict do update set did = excluded.did, rkey = excluded.rkey').run(collection, id, did, rkey)
  }

  forget(collection: string, id: string) {
    this.sql('delete from mirror where collection = ? and id = ?').run(collection, id)
  }

  /** Where the record of MongoDB document `id` of `collection` was written, if known. */
  whereIs(collection: string, id: string): { did: string; rkey: string } | undefined {
    return this.sql('select did, rkey from mirror where collection = ? and id = ?').get(collection, id) as { did: string; rkey: string } | undefined
  }

  /** The blob ref (lexicon JSON) the PDS gave when a blob with this CID was uploaded to repo `did`, if it was. */
  uploadedBlob(did: string, cid: string): Record<string, unknown> | undefined {
    const ref = this.sql('select ref from blob where did = ? and cid = ?').pluck().get(did, cid) as string | undefined
    return ref === undefined ? undefined : JSON.parse(ref)
  }

  blobUploaded(did: string, cid: string, ref: Record<string, unknown>) {
    this.sql('insert or replace into blob values (?, ?, ?)').run(did, cid, JSON.stringify(ref))
  }

  /** The PDS no longer has it (it answered BlobNotFound): upload again next time. */
  blobLost(did: string, cid: string) {
    this.sql('delete from blob where did = ? and cid = ?').run(did, cid)
  }

  // ---- state ----

  getState(key: string): string | undefined {
    return (this.sql('select value from state where key = ?').get(key) as { value: string } | undefined)?.value
  }

  setState(key: string, value: string) {
    this.sql('insert into state values (?, ?) on conflict(key) do update set value = excluded.value').run(key, value)
  }

  /** The latest run (killed runs shown as interrupted) with the problems grouped by reason, or null. */
  latestStatus(): WriterStatus | null {
    this.markInterrupted()
    const run = this.sql('select * from run order by id desc limit 1').get() as RunRow | undefined
    if (!run) return null
    const problems = this.problemGroups()
    return {
      mode: run.mode,
      status: run.status,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt,
      counts: JSON.parse(run.counts),
      problems,
      problemItems: problems.reduce((n, g) => n + g.items, 0),
      ...(run.backlog !== null ? { backlog: run.backlog } : {}),
    }
  }

  /** The latest `n` runs, newest first (for `writer status`). */
  runs(n = 10): Array<Omit<RunRow, 'counts' | 'options'> & { counts: Record<string, number>; options: Record<string, unknown> }> {
    this.markInterrupted()
    return (this.sql('select * from run order by id desc limit ?').all(n) as RunRow[]).map((r) => ({
      ...r,
      counts: JSON.parse(r.counts),
      options: JSON.parse(r.options),
    }))
  }

  close() {
    this.db.close()
  }
}

/**
 * A reason with its particulars masked, so problems that differ only by a URL, a DID, a MongoDB
 * id or a size group together: `video: GET <url>: HTTP 404`.
 */
export function reasonPattern(reason: string): string {
  return reason
    .replace(/\b(?:https?|wss?):\/\/[^\s"')]+?(?=[:,.;]?(?:[\s"')]|$))/g, '<url>')
    .replace(/\bdid:[a-z]+:[A-Za-z0-9._:%-]+/g, '<did>')
    .replace(/\b[0-9a-f]{24}\b/g, '<id>')
    .replace(/\b\d{4,}\b/g, '<n>')
}

function toProblemRow(r: ProblemRow & { private: number | boolean; detail: string | null; pattern?: string }): ProblemRow {
  const { detail, private: priv, pattern: _, ...rest } = r
  return { ...rest, ...(detail !== null ? { detail } : {}), ...(priv ? { private: true } : {}) }
}

/** True when a process with this PID exists on this host. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

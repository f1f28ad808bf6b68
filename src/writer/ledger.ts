import fs from 'node:fs'
import path from 'node:path'
import SqliteDb from 'better-sqlite3'
import type { WriterStatus } from './status.js'

/** Problems kept per run; older ones are summarised by the run's counts. */
const MAX_PROBLEMS_PER_RUN = 1000

/**
 * The writer's own small SQLite ledger (design.md): each run with its counts and problems,
 * and key/value state such as the change-stream resume token. MongoDB back-references and the
 * PDS stay the source of truth for what is mirrored; the ledger is for operators and resuming.
 */
export class Ledger {
  private readonly db: SqliteDb.Database

  /** Opens (creating) `<dataDir>/writer.sqlite`. */
  constructor(dataDir: string) {
    fs.mkdirSync(dataDir, { recursive: true })
    this.db = new SqliteDb(path.join(dataDir, 'writer.sqlite'))
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('busy_timeout = 5000')
    this.db.exec(`
      create table if not exists run (id integer primary key, mode text not null, startedAt text not null, finishedAt text, counts text not null default '{}', backlog integer);
      create table if not exists problem (runId integer not null, kind text not null, id text not null, repo text not null, action text not null, reason text, at text not null);
      create index if not exists problem_run on problem (runId);
      create table if not exists state (key text primary key, value text not null);
      create table if not exists mirror (collection text not null, id text not null, did text not null, rkey text not null, primary key (collection, id));
    `)
  }

  /** Starts a run; returns its id. */
  startRun(mode: string): number {
    return Number(this.db.prepare('insert into run (mode, startedAt) values (?, ?)').run(mode, new Date().toISOString()).lastInsertRowid)
  }

  /** Records a problem (skipped, invalid or failed item) of a run, up to a cap per run. */
  problem(runId: number, p: { kind: string; id: string; repo: string; action: string; reason?: string }) {
    const { n } = this.db.prepare('select count(*) as n from problem where runId = ?').get(runId) as { n: number }
    if (n >= MAX_PROBLEMS_PER_RUN) return
    this.db.prepare('insert into problem values (?, ?, ?, ?, ?, ?, ?)').run(runId, p.kind, p.id, p.repo, p.action, p.reason ?? null, new Date().toISOString())
  }

  /** Updates a run's counts (and live backlog); `finished` stamps its end. */
  updateRun(runId: number, counts: Record<string, number>, opts: { finished?: boolean; backlog?: number } = {}) {
    this.db
      .prepare('update run set counts = ?, backlog = ?, finishedAt = coalesce(finishedAt, ?) where id = ?')
      .run(JSON.stringify(counts), opts.backlog ?? null, opts.finished ? new Date().toISOString() : null, runId)
  }

  /** Remembers where an item's record was written (the writer's "what was written"). */
  remember(collection: string, id: string, did: string, rkey: string) {
    this.db.prepare('insert into mirror values (?, ?, ?, ?) on conflict do update set did = excluded.did, rkey = excluded.rkey').run(collection, id, did, rkey)
  }

  forget(collection: string, id: string) {
    this.db.prepare('delete from mirror where collection = ? and id = ?').run(collection, id)
  }

  /** Where the record of MongoDB document `id` of `collection` was written, if known. */
  whereIs(collection: string, id: string): { did: string; rkey: string } | undefined {
    return this.db.prepare('select did, rkey from mirror where collection = ? and id = ?').get(collection, id) as { did: string; rkey: string } | undefined
  }

  getState(key: string): string | undefined {
    return (this.db.prepare('select value from state where key = ?').get(key) as { value: string } | undefined)?.value
  }

  setState(key: string, value: string) {
    this.db.prepare('insert into state values (?, ?) on conflict(key) do update set value = excluded.value').run(key, value)
  }

  /** The latest run with its 50 newest problems, or null. */
  latestStatus(): WriterStatus | null {
    const run = this.db.prepare('select * from run order by id desc limit 1').get() as
      | { id: number; mode: string; startedAt: string; finishedAt: string | null; counts: string; backlog: number | null }
      | undefined
    if (!run) return null
    const problems = this.db.prepare('select kind, id, repo, action, reason, at from problem where runId = ? order by rowid desc limit 50').all(run.id) as WriterStatus['problems']
    return { mode: run.mode, startedAt: run.startedAt, finishedAt: run.finishedAt, counts: JSON.parse(run.counts), problems, ...(run.backlog !== null ? { backlog: run.backlog } : {}) }
  }

  close() {
    this.db.close()
  }
}

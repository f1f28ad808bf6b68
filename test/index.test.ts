import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrations } from '../migrations/index.js'
import { ReadModel } from '../src/appview/read-model.js'
import { migrateIndex, openIndex, pendingMigrations, type IndexDb } from '../src/db/index.js'
import { saveCursor, storedCursor } from '../src/db/store.js'
import { createLogger } from '../src/log.js'
import { waitFor } from '../src/wait.js'
import { BACKENDS, INDEX_PASSWORD, testIndex, type Backend, type TestIndex } from './support/backend.js'
import { startCli } from './support/children.js'

/** Tables and their columns, and index names, as each engine reports them. */
async function schemaOf(db: IndexDb, backend: Backend): Promise<{ columns: Record<string, string[]>; indexes: string[] }> {
  if (backend === 'sqlite') {
    const tables = (
      await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%'`.execute(db)
    ).rows.map((r) => r.name)
    const columns: Record<string, string[]> = {}
    for (const t of tables) columns[t] = (await sql<{ name: string }>`select name from pragma_table_info(${t})`.execute(db)).rows.map((r) => r.name).sort()
    const indexes = (await sql<{ name: string }>`select name from sqlite_master where type = 'index' and sql is not null`.execute(db)).rows.map((r) => r.name)
    return { columns, indexes: indexes.sort() }
  }
  const rows = (
    await sql<{
      table_name: string
      column_name: string
    }>`select table_name, column_name from information_schema.columns where table_schema = 'public' and table_name not like 'kysely_%'`.execute(db)
  ).rows
  const columns: Record<string, string[]> = {}
  for (const r of rows) (columns[r.table_name] ??= []).push(r.column_name)
  for (const t of Object.keys(columns)) columns[t].sort()
  const indexes = (
    await sql<{
      indexname: string
    }>`select indexname from pg_indexes where schemaname = 'public' and indexname not like 'kysely_%' and indexname not in (select conname from pg_constraint where contype = 'p')`.execute(
      db,
    )
  ).rows.map((r) => r.indexname)
  return { columns, indexes: indexes.sort() }
}

/**
 * The index itself on both engines: `ac-appview migrate` (a real process) creates it and is then a
 * no-op; one set of migrations gives the same tables, columns and indexes on SQLite and
 * PostgreSQL; text sorts byte by byte on both (the AppView's feed order and cursors rely on it);
 * a firehose seq past 2^31 round-trips; the database password is never printed.
 */
describe('the index on SQLite and PostgreSQL', () => {
  let work: string
  const indexes = {} as Record<Backend, TestIndex>
  const dbs = {} as Record<Backend, IndexDb>

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-index-'))
    for (const backend of BACKENDS) indexes[backend] = await testIndex(backend, work)
  })

  afterAll(async () => {
    for (const db of Object.values(dbs)) await db.destroy()
    for (const idx of Object.values(indexes)) await idx.stop()
    await fs.rm(work, { recursive: true, force: true })
  })

  it.each(BACKENDS)('ac-appview migrate applies every migration on %s, then has nothing to do', async (backend) => {
    for (const round of [1, 2]) {
      const run = startCli(['migrate'], { ...indexes[backend].env, DATA_DIR: work })
      expect(await run.exited, run.stderr()).toBe(0)
      expect(run.stderr()).toMatch(round === 1 ? /"msg":"index migrated"/ : /"msg":"index migrations applied"/)
      if (round === 2) expect(run.stderr()).not.toMatch(/"msg":"index migrated"/)
      expect(run.stderr()).not.toContain(INDEX_PASSWORD)
    }
    dbs[backend] = openIndex(indexes[backend].target)
    expect(await pendingMigrations(dbs[backend])).toEqual([])
    expect(await migrateIndex(dbs[backend])).toEqual([])
  })

  it('gives both engines the same tables, columns and indexes from one set of migrations', async () => {
    const [lite, pg] = await Promise.all([schemaOf(dbs.sqlite, 'sqlite'), schemaOf(dbs.postgres, 'postgres')])
    expect(pg).toEqual(lite)
    expect(Object.keys(lite.columns).sort()).toEqual(['actor', 'backfill', 'cursor', 'index_version', 'item', 'post', 'post_ref', 'quarantine', 'repo'])
    expect(Object.keys(migrations).length).toBeGreaterThanOrEqual(6)
  })

  it('closes every PostgreSQL connection of a read model when it is closed', async () => {
    const others = async () =>
      Number(
        (
          await sql<{ n: string }>`select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`.execute(
            dbs.postgres,
          )
        ).rows[0].n,
      )
    const before = await others()
    const read = ReadModel.open(indexes.postgres.target, { log: createLogger('silent') })
    await read.ready()
    expect(await read.findActor('did:plc:nobody')).toBeUndefined() // a prepared statement on the pool
    expect(await others()).toBeGreaterThan(before)
    await read.close()
    await waitFor('the read model’s connections to end', async () => (await others()) === before, 5000) // pg's idle timeout is 10 s
  })

  it('sorts text byte by byte on both engines, whatever the locale', async () => {
    const uris = [
      'at://did:plc:b/x/a',
      'at://did:plc:B/x/a',
      'at://did:plc:a-b/x/a',
      'at://did:plc:ab/x/a',
      'at://did:plc:a_b/x/a',
      'at://did:plc:a.b/x/a',
      'at://did:plc:é/x/a',
      'at://did:plc:Z/x/a',
    ]
    const order = async (db: IndexDb) => {
      await db.deleteFrom('quarantine').execute()
      await db
        .insertInto('quarantine')
        .values(
          uris.map((uri) => ({
            uri,
            cid: 'c',
            did: 'd',
            collection: 'x',
            reason: 'r',
            record: '{}',
            firstSeen: '',
            lastSeen: '',
            rev: null,
            lexiconHash: null,
          })),
        )
        .execute()
      return (await db.selectFrom('quarantine').select('uri').orderBy('uri').execute()).map((r) => r.uri)
    }
    const bytewise = [...uris].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    expect(await order(dbs.sqlite)).toEqual(bytewise)
    expect(await order(dbs.postgres)).toEqual(bytewise)
    const collation = await sql<{
      collation_name: string
    }>`select collation_name from information_schema.columns where table_name = 'item' and column_name = 'uri'`.execute(dbs.postgres)
    expect(collation.rows[0].collation_name).toBe('C')
  })

  it.each(BACKENDS)('keeps a firehose seq past 2^31 exactly on %s', async (backend) => {
    const seq = 2 ** 40 + 7 // a relay's seqs passed 2^31 long ago
    await saveCursor(dbs[backend], 'wss://relay.example', seq, null, new Date().toISOString())
    expect(await storedCursor(dbs[backend], 'wss://relay.example')).toBe(seq)
  })
})

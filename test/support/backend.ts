import path from 'node:path'
import { sql } from 'kysely'
import { openIndex, type Backend, type IndexDb } from '../../src/db/index.js'
import { startPostgres, type Postgres } from './postgres.js'

export type { Backend } from '../../src/db/index.js'

/** The engines every index, ingest and AppView suite runs against, each in turn. */
export const BACKENDS: Backend[] = ['sqlite', 'postgres']

/**
 * The password in every test's INDEX_DATABASE_URL (the test server trusts loopback and ignores
 * it): tests check it is shown and logged nowhere.
 */
export const INDEX_PASSWORD = 'index-db-secret'

/** The index of one test stack: where it is, the environment selecting it, and a way to read it from the test. */
export interface TestIndex {
  backend: Backend
  /** The SQLite path or PostgreSQL URL (the configuration's `index`). */
  target: string
  /** INDEX_DB_PATH or INDEX_DATABASE_URL, for loadConfig and child processes. */
  env: Record<string, string>
  /** The PostgreSQL server, when there is one. */
  postgres?: Postgres
  /** A second, empty index of the same engine named `name` (a file beside the first, or a database on the same server). */
  another(name: string): Promise<{ target: string; env: Record<string, string> }>
  /** Stops the PostgreSQL server (no-op on SQLite: the file goes with the stack's folder). */
  stop(): Promise<void>
}

/**
 * A fresh, empty index for a test stack: on SQLite `index.sqlite` in `work`; on PostgreSQL a
 * throwaway server of its own (test/support/postgres.ts), stopped by {@link TestIndex.stop}.
 */
export async function testIndex(backend: Backend, work: string): Promise<TestIndex> {
  if (backend === 'sqlite') {
    const file = path.join(work, 'index.sqlite')
    const another = async (name: string) => {
      const target = path.join(work, `${name}.sqlite`)
      return { target, env: { INDEX_DB_PATH: target } }
    }
    return { backend, target: file, env: { INDEX_DB_PATH: file }, another, stop: async () => {} }
  }
  const postgres = await startPostgres()
  const url = postgres.url.replace('postgres@', `postgres:${INDEX_PASSWORD}@`)
  const another = async (name: string) => {
    await withIndex(url, (db) => sql`create database ${sql.id(name)}`.execute(db))
    const target = url.replace(/\/postgres$/, `/${name}`)
    return { target, env: { INDEX_DATABASE_URL: target } }
  }
  return { backend, target: url, env: { INDEX_DATABASE_URL: url }, postgres, another, stop: () => postgres.stop() }
}

/** `fn` with a connection of its own to the index at `target` (the ingest may be another process), closed after. */
export async function withIndex<T>(target: string, fn: (db: IndexDb) => Promise<T>): Promise<T> {
  const db = openIndex(target, { poolSize: 1 })
  try {
    return await fn(db)
  } finally {
    await db.destroy()
  }
}

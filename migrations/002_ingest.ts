import { type Kysely, sql } from 'kysely'
import { textType } from '../src/db/sql.js'

/**
 * Ingest state beyond the cursor (issue 5):
 * - `repo`: per repository, the newest rev the index reflects (live commits at or below it are
 *   skipped, which makes a backfill and the live stream overlap harmlessly) and its backfill state;
 * - `backfill`: one row per firehose host, so an interrupted backfill resumes where it stopped;
 * - `quarantine.rev` and `quarantine.lexiconHash`: what a re-check needs when lexicons change.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const text = textType(db)
  await db.schema
    .createTable('repo')
    .addColumn('did', text, (c) => c.primaryKey())
    .addColumn('source', text, (c) => c.notNull())
    .addColumn('rev', text)
    .addColumn('state', text)
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error', text)
    .addColumn('updatedAt', text, (c) => c.notNull())
    .execute()
  await sql`create index repo_source_state on repo (source, state)`.execute(db)

  await db.schema
    .createTable('backfill')
    .addColumn('source', text, (c) => c.primaryKey())
    .addColumn('status', text, (c) => c.notNull())
    .addColumn('reason', text, (c) => c.notNull())
    .addColumn('startedAt', text, (c) => c.notNull())
    .addColumn('finishedAt', text)
    .execute()

  await db.schema.alterTable('quarantine').addColumn('rev', text).execute()
  await db.schema.alterTable('quarantine').addColumn('lexiconHash', text).execute()
  await sql`create index quarantine_did on quarantine (did)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index quarantine_did`.execute(db)
  await db.schema.alterTable('quarantine').dropColumn('lexiconHash').execute()
  await db.schema.alterTable('quarantine').dropColumn('rev').execute()
  await db.schema.dropTable('backfill').execute()
  await db.schema.dropTable('repo').execute()
}

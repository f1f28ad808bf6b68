import { Lexicons, type LexiconDoc } from '@atproto/lexicon'
import type { IndexDb } from '../db/index.js'
import { lexicons, schemas } from '../lexicon/lexicons.js'
import type { Logger } from '../log.js'
import { collectionOf, recordOpFromJson, type Indexer } from './indexer.js'
import { lexiconHash } from './lexicon-hash.js'
import { metrics } from './metrics.js'

/** A quarantined record as operators see it (`ac-appview ingest quarantine`). */
export interface QuarantineEntry {
  uri: string
  cid: string
  collection: string
  reason: string
  firstSeen: string
  lastSeen: string
  /** The record as it was published (lexicon JSON), before normalising. */
  record: unknown
}

/** Every quarantined record, most recently seen first; `limit` caps the list. */
export async function listQuarantine(db: IndexDb, limit = 10_000): Promise<QuarantineEntry[]> {
  const rows = await db.selectFrom('quarantine').selectAll().orderBy('lastSeen', 'desc').limit(limit).execute()
  return rows.map((r) => ({
    uri: r.uri,
    cid: r.cid,
    collection: r.collection,
    reason: r.reason,
    firstSeen: r.firstSeen,
    lastSeen: r.lastSeen,
    record: JSON.parse(r.record),
  }))
}

/** Refreshes the quarantine gauge from the table. */
export async function countQuarantine(db: IndexDb): Promise<number> {
  const row = await db
    .selectFrom('quarantine')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirst()
  const n = Number(row?.n ?? 0)
  metrics.quarantined.set(n)
  return n
}

/**
 * Re-validates quarantined records last checked against other lexicons (their `lexiconHash`
 * differs from `docs`'): records that now pass move into `item`; the others keep their row with
 * the new reason and hash. Runs at ingest start-up, so deploying changed lexicons releases what
 * they now accept. `docs` defaults to the lexicons built into this version.
 * @returns how many rows were checked and how many were released.
 */
export async function recheckQuarantine(
  indexer: Indexer,
  log: Logger,
  docs: LexiconDoc[] = schemas as LexiconDoc[],
): Promise<{ checked: number; released: number }> {
  const db = indexer.db
  const hash = lexiconHash(docs)
  const lex = docs === schemas ? lexicons : new Lexicons(docs)
  const rows = await db
    .selectFrom('quarantine')
    .selectAll()
    .where((eb) => eb.or([eb('lexiconHash', 'is', null), eb('lexiconHash', '!=', hash)]))
    .execute()
  let released = 0
  for (const row of rows) {
    const col = collectionOf(row.collection)
    const rkey = row.uri.split('/').pop()!
    const op = col && recordOpFromJson(col, row.did, rkey, row.cid, row.rev ?? '', JSON.parse(row.record), 'create', lex)
    await indexer.write(async (trx) => {
      if (op?.type === 'put') {
        await indexer.applyRecordOp(trx, op, new Date().toISOString())
        released++
      } else {
        await trx
          .updateTable('quarantine')
          .set({ lexiconHash: hash, reason: op?.reason ?? row.reason })
          .where('uri', '=', row.uri)
          .execute()
      }
    })
  }
  if (rows.length) log.info({ checked: rows.length, released }, 'quarantine re-checked against changed lexicons')
  await countQuarantine(db)
  return { checked: rows.length, released }
}

/** The quarantine as a text table for operators: one line per record, then a count. */
export function formatQuarantine(entries: QuarantineEntry[]): string {
  const lines = entries.map((e) => `${e.lastSeen}  ${e.uri}\n    ${e.reason}`)
  return [...lines, `${entries.length} record(s) in quarantine`, ''].join('\n')
}

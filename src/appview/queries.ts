import { sql } from 'kysely'
import { KINDS, type Kind } from '../collections/index.js'
import type { IndexDb } from '../db/index.js'
import type { FeedPosition } from './cursor.js'
import type { ItemRow } from './views.js'

/** Items of actors whose account is taken down, suspended, deactivated or deleted are hidden. */
function visibleItems(db: IndexDb) {
  return db
    .selectFrom('item')
    .innerJoin('actor', 'actor.did', 'item.did')
    .where('actor.status', 'is', null)
    .select(['item.uri', 'item.cid', 'item.did', 'item.kind', 'item.indexedAt', 'item.record', 'item.sortAt', 'actor.handle', 'actor.pds'])
}

export type FeedRow = ItemRow & { sortAt: string }

/**
 * One page of a feed, newest `sortAt` first, ties by uri descending; `limit + 1` rows are read
 * so the caller knows whether another page exists.
 */
export async function feedPage(db: IndexDb, q: { did?: string; kind?: Kind; limit: number; after?: FeedPosition }): Promise<FeedRow[]> {
  let query = visibleItems(db)
  if (q.did) query = query.where('item.did', '=', q.did)
  if (q.kind) query = query.where('item.kind', '=', q.kind)
  if (q.after) {
    const { sortAt, uri } = q.after
    query = query.where((eb) => eb.or([eb('item.sortAt', '<', sortAt), eb.and([eb('item.sortAt', '=', sortAt), eb('item.uri', '<', uri)])]))
  }
  return query.orderBy('item.sortAt', 'desc').orderBy('item.uri', 'desc').limit(q.limit + 1).execute()
}

/**
 * The item holding a short code: only from trusted repos; the earliest `when` wins (design.md,
 * code authority), ties by uri.
 */
export async function itemByCode(db: IndexDb, kind: Kind, code: string): Promise<FeedRow | undefined> {
  return visibleItems(db)
    .where('item.kind', '=', kind)
    .where('item.code', '=', code)
    .where('actor.trusted', '=', 1)
    .orderBy('item.sortAt', 'asc')
    .orderBy('item.uri', 'asc')
    .limit(1)
    .executeTakeFirst()
}

/** The visible actor for a DID or handle (handles compare case-insensitively). */
export async function findActor(db: IndexDb, actor: string): Promise<{ did: string; handle: string | null } | undefined> {
  const column = actor.startsWith('did:') ? 'did' : 'handle'
  return db
    .selectFrom('actor')
    .select(['did', 'handle'])
    .where(column, '=', column === 'handle' ? actor.toLowerCase() : actor)
    .where('status', 'is', null)
    .executeTakeFirst()
}

/** Item counts per kind for one actor; kinds without items count 0. */
export async function countsByKind(db: IndexDb, did: string): Promise<Record<Kind, number>> {
  const rows = await db.selectFrom('item').select(['kind', sql<number>`count(*)`.as('n')]).where('did', '=', did).groupBy('kind').execute()
  const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>
  for (const r of rows) if (r.kind in counts) counts[r.kind as Kind] = Number(r.n)
  return counts
}

import { isDeepStrictEqual } from 'node:util'
import { NotReady, type Backref, type MirroredCollection, type SourceItem, type WriterContext } from '../collections/index.js'
import type { RepoRecord } from './repo.js'
import { deterministicRkey } from './rkey.js'

/** What the comparison of MongoDB and a repo found for one record key. */
export type Finding = 'ok' | 'missing' | 'drifted' | 'incomplete' | 'duplicate' | 'orphan' | 'not-ready' | 'unbuildable'

/** One record key of a repo and what must happen to it. */
export interface Planned {
  col: MirroredCollection
  /** The MongoDB item; absent for an orphan whose `ref` names no document of this owner. */
  item?: SourceItem
  rkey: string
  existing?: RepoRecord
  /** Record without blobs (creates and updates). */
  fields?: Record<string, unknown>
  finding: Finding
  /** `failed` once building or writing it failed (already reported). */
  action: 'create' | 'update' | 'delete' | 'unchanged' | 'failed' | 'none'
  /**
   * Why, for findings other than `ok`. `incomplete`: the record is right but lacks an optional
   * blob (a thumbnail whose PNG was missing); the writer tries to make it again, the audit lets it be.
   */
  detail?: string
}

/** Whether carrying out `p` writes to the PDS (a create, update or delete), as opposed to MongoDB back-references only or nothing. */
export function writesToPds(p: Planned): boolean {
  return p.action === 'create' || p.action === 'update' || p.action === 'delete'
}

/**
 * Compares the items of one repo's owner with the records the repo holds, kind by kind.
 * - A live item's record lives at its back-reference when that record exists, else at the
 *   record AC made for it (found by `ref` or legacy `mongoId`), else at the back-reference's
 *   key, else at its deterministic key (docs/architecture.md).
 * - Further records with the same `ref` are duplicates (AC's crash fault) and are deleted.
 * - Records of nuked or deleted items, and (when `complete`) records whose `ref` names no live
 *   item of this owner, are orphans and are deleted.
 * `complete` is false when the items were filtered (`--since`, `--limit`), so absence from
 * the list proves nothing.
 */
export async function planRepo(
  items: Array<{ col: MirroredCollection; item: SourceItem }>,
  records: Map<MirroredCollection, Map<string, RepoRecord>>,
  ctx: WriterContext,
  complete: boolean,
): Promise<Planned[]> {
  const planned: Planned[] = []
  for (const [col, onPds] of records) {
    const claimed = new Set<string>()
    const byRef = indexByRef(col, onPds)
    for (const { item } of items.filter((o) => o.col === col)) {
      const matches = byRef.get(item.id) ?? []
      let rkey: string
      try {
        rkey = chooseRkey(item, onPds, matches)
      } catch (err) {
        matches.forEach((m) => claimed.add(m))
        planned.push({ col, item, rkey: '', finding: 'unbuildable', action: 'none', detail: (err as Error).message })
        continue
      }
      claimed.add(rkey)
      for (const dup of matches.filter((r) => r !== rkey)) {
        claimed.add(dup)
        planned.push({ col, item, rkey: dup, existing: onPds.get(dup), finding: 'duplicate', action: 'delete', detail: `second record for ref ${item.id}` })
      }
      planned.push(await planItem(col, item, rkey, onPds.get(rkey), ctx))
    }
    if (!complete) continue
    for (const [rkey, rec] of onPds) {
      if (claimed.has(rkey)) continue
      const ref = col.normalize(rec.value).ref
      planned.push({
        col,
        rkey,
        existing: rec,
        finding: 'orphan',
        action: 'delete',
        detail: typeof ref === 'string' ? `no live item has ref ${ref}` : 'record has no ref',
      })
    }
  }
  return planned
}

/** The plan for one item whose record key is known: create, update, delete or nothing. */
export async function planItem(col: MirroredCollection, item: SourceItem, rkey: string, current: RepoRecord | undefined, ctx: WriterContext): Promise<Planned> {
  if (!item.live) {
    return current
      ? { col, item, rkey, existing: current, finding: 'orphan', action: 'delete', detail: 'item is nuked or deleted in MongoDB' }
      : { col, item, rkey, finding: 'ok', action: 'none' }
  }
  let fields: Record<string, unknown>
  try {
    fields = await col.toRecord(item, ctx)
  } catch (err) {
    const finding = err instanceof NotReady ? 'not-ready' : 'unbuildable'
    return { col, item, rkey, existing: current, finding, action: 'none', detail: (err as Error).message }
  }
  if (!current) return { col, item, rkey, fields, finding: 'missing', action: 'create' }
  const drifted = driftedFields(col, current.value, fields)
  if (drifted.length) return { col, item, rkey, existing: current, fields, finding: 'drifted', action: 'update', detail: drifted.join(', ') }
  const lacking = col.blobs.filter((b) => !b.required && current.value[b.field] === undefined).map((b) => b.field)
  if (lacking.length) return { col, item, rkey, existing: current, fields, finding: 'incomplete', action: 'update', detail: `no ${lacking.join(', ')}` }
  return { col, item, rkey, existing: current, fields, finding: 'ok', action: 'unchanged' }
}

/** The MongoDB id a planned key stands for: the item's, else the orphan record's `ref`. */
export function idOf(p: Planned): string {
  return p.item?.id ?? String(p.col.normalize(p.existing?.value ?? {}).ref ?? '(no ref)')
}

/** Records by the MongoDB id they mirror (`ref`, or legacy `mongoId`), oldest rkey first. */
function indexByRef(col: MirroredCollection, records: Map<string, RepoRecord>): Map<string, string[]> {
  const byRef = new Map<string, string[]>()
  for (const r of records.values()) {
    const ref = col.normalize(r.value).ref
    if (typeof ref !== 'string') continue
    byRef.set(ref, [...(byRef.get(ref) ?? []), r.rkey].sort())
  }
  return byRef
}

/** Where an item's record lives (see {@link planRepo}). */
export function chooseRkey(item: SourceItem, onPds: Map<string, RepoRecord>, matches: string[]): string {
  if (item.backref && onPds.has(item.backref.rkey)) return item.backref.rkey
  if (matches.length) return matches[0]
  return item.backref?.rkey ?? deterministicRkey(item.id, item.when)
}

/** Names of the fields in which the PDS record differs from `fields` (missing required blobs included; optional blobs may be absent). */
function driftedFields(col: MirroredCollection, value: Record<string, unknown>, fields: Record<string, unknown>): string[] {
  const blobFields = new Set(col.blobs.map((b) => b.field))
  const drifted = Object.keys(fields).filter((k) => !isDeepStrictEqual(value[k], fields[k]))
  drifted.push(...Object.keys(value).filter((k) => !(k in fields) && !blobFields.has(k)))
  drifted.push(...col.blobs.filter((b) => b.required && value[b.field] === undefined).map((b) => b.field))
  return drifted
}

/**
 * The MongoDB update that makes an item's back-references right, or null when they are.
 * A record at `want` gets `atproto.{rkey,uri,cid}` (tapes also `at.{…}`, AC's tape shape),
 * written with `$set` on sub-fields so AC's other fields survive. Without a record, `uri`
 * and `cid` are unset and `atproto.rkey` is kept, so an un-nuked item returns to its key.
 */
export function backrefUpdate(col: MirroredCollection, item: SourceItem, want: Backref | null): Record<string, Record<string, string>> | null {
  const shapes = item.backrefShapes
  if (!want) {
    const stale = Object.values(shapes).some((s) => s?.uri !== undefined || s?.cid !== undefined)
    return stale ? { $unset: { 'atproto.uri': '', 'atproto.cid': '', 'at.uri': '', 'at.cid': '' } } : null
  }
  const keys = col.backrefFields
  const same = (s: Partial<Backref> | undefined) => s?.rkey === want.rkey && s?.uri === want.uri && s?.cid === want.cid
  if (keys.every((k) => same(shapes[k]))) return null
  const set: Record<string, string> = {}
  for (const k of keys) Object.assign(set, { [`${k}.rkey`]: want.rkey, [`${k}.uri`]: want.uri!, [`${k}.cid`]: want.cid! })
  return { $set: set }
}

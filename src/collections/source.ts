import { isValidRecordKey } from '@atproto/syntax'
import type { Backref, MirroredCollection, SourceItem } from './types.js'
import { DocError, objectIdHex } from './types.js'

/**
 * Reads one MongoDB document of `col`'s collection into a {@link SourceItem}.
 * Rules from docs/data-model.md: anonymous items have no `user` field; `when` is a Date (ISO
 * strings are tolerated); back-references come in three shapes (`atproto.rkey`,
 * `atproto: {rkey, uri}`, `at: {rkey, uri, cid}`).
 * @throws DocError naming the first bad field and why.
 */
export function readDoc<F>(col: MirroredCollection<F>, doc: Record<string, unknown>): SourceItem<F> {
  const id = objectIdHex(doc._id)
  const owner = readOwner(doc.user)
  if (owner === null && !col.anonymous) throw new DocError('user', `is missing (${col.mongo} are never anonymous)`)
  const when = readDate(doc.when, 'when')
  const parsed = col.fieldsSchema.safeParse(doc)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new DocError(issue.path.join('.') || '(document)', issue.message)
  }
  return { id, owner, when, live: col.isLive(doc), backref: readBackref(doc), backrefShapes: readShapes(doc), fields: parsed.data }
}

function readOwner(user: unknown): string | null {
  if (user === undefined || user === null) return null
  if (typeof user !== 'string' || user.length === 0) throw new DocError('user', 'is not a non-empty string')
  return user
}

/** Dates before 2000 are corrupt (AC began in 2020; a BSON NaN date reads back as 1970). */
const EARLIEST = Date.UTC(2000, 0, 1)

function readDate(value: unknown, field: string): Date {
  const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : null
  if (!date || Number.isNaN(date.getTime())) throw new DocError(field, 'is not a valid date')
  if (date.getTime() < EARLIEST || date.getTime() > Date.now() + 86_400_000) throw new DocError(field, `is out of range (${date.toISOString()})`)
  return date
}

function readShapes(doc: Record<string, unknown>): SourceItem['backrefShapes'] {
  const shapes: SourceItem['backrefShapes'] = {}
  for (const key of ['atproto', 'at'] as const) {
    const ref = doc[key]
    if (ref && typeof ref === 'object') {
      const { rkey, uri, cid } = ref as Record<string, unknown>
      shapes[key] = { rkey: asString(rkey), uri: asString(uri), cid: asString(cid) }
    }
  }
  return shapes
}

function asString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

/** The back-reference in any of AC's shapes; `atproto` wins over `at` when both hold an rkey. */
export function readBackref(doc: Record<string, unknown>): Backref | null {
  for (const key of ['atproto', 'at']) {
    const ref = doc[key] as Record<string, unknown> | undefined
    if (ref && typeof ref.rkey === 'string' && isValidRecordKey(ref.rkey)) {
      return {
        rkey: ref.rkey,
        uri: typeof ref.uri === 'string' ? ref.uri : undefined,
        cid: typeof ref.cid === 'string' ? ref.cid : undefined,
      }
    }
  }
  return null
}

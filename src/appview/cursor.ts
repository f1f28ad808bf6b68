import { XrpcError } from './xrpc.js'

/** A position in a feed sorted by (sortAt desc, uri desc): the last item of the page served. */
export interface FeedPosition {
  sortAt: string
  uri: string
}

/** `sortAt` as the index stores it: `Date#toISOString()`. */
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
/** An item's AT-URI: `at://<did>/<collection>/<rkey>` (ATProto DID, NSID and record-key syntax). */
const ITEM_URI = /^at:\/\/did:[a-z]+:[A-Za-z0-9._:%-]{1,2048}\/[A-Za-z0-9.-]{1,317}\/[A-Za-z0-9._~:-]{1,512}$/

/**
 * Opaque cursor: base64url of `sortAt|uri`. Keyset pagination on the feed's total order, so it
 * stays stable while new items are indexed: no item is skipped or repeated (items indexed above
 * the position are not seen by this walk; those below it are).
 */
export function encodeCursor(pos: FeedPosition): string {
  return Buffer.from(`${pos.sortAt}|${pos.uri}`).toString('base64url')
}

/** @throws XrpcError 400 InvalidCursor when the cursor was not made by {@link encodeCursor}. */
export function decodeCursor(cursor: string | undefined): FeedPosition | undefined {
  if (cursor === undefined) return undefined
  const text = /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString() : ''
  const sep = text.indexOf('|')
  const sortAt = text.slice(0, sep)
  const uri = text.slice(sep + 1)
  if (sep < 0 || !ISO.test(sortAt) || !ITEM_URI.test(uri)) {
    throw new XrpcError(400, 'InvalidCursor', 'Malformed cursor: pass back the cursor of a previous page unchanged')
  }
  return { sortAt, uri }
}

import { XrpcError } from './xrpc.js'

/** A position in a feed sorted by (sortAt desc, uri desc). */
export interface FeedPosition {
  sortAt: string
  uri: string
}

/** Opaque cursor: base64url of `sortAt` and `uri`. Stable while new items arrive above it. */
export function encodeCursor(pos: FeedPosition): string {
  return Buffer.from(`${pos.sortAt}|${pos.uri}`).toString('base64url')
}

/** @throws XrpcError 400 InvalidCursor when the cursor was not made by {@link encodeCursor}. */
export function decodeCursor(cursor: string | undefined): FeedPosition | undefined {
  if (cursor === undefined) return undefined
  const text = Buffer.from(cursor, 'base64url').toString()
  const sep = text.indexOf('|')
  const sortAt = text.slice(0, sep)
  const uri = text.slice(sep + 1)
  if (sep < 0 || Number.isNaN(Date.parse(sortAt)) || !uri.startsWith('at://')) {
    throw new XrpcError(400, 'InvalidCursor', 'Malformed cursor')
  }
  return { sortAt, uri }
}


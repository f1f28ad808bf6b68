import { MongoNetworkError, MongoServerSelectionError } from 'mongodb'

/** Node's codes for a connection that failed or broke: the other side may come back. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
])

/**
 * Whether a failed operation may succeed if tried again later, the writer's one rule for retrying:
 * - a PDS answer: network errors (`@atproto/xrpc` reports them with status 1), 408, 429 and 5xx
 *   are transient; any other 4xx is about the request itself (a wrong password, a taken handle,
 *   a record the PDS refuses) and is permanent;
 * - MongoDB unreachable (network errors, no server selectable) and connection errors are transient;
 * - anything else (a malformed document, a bug) is permanent: retrying it would stall its repo forever.
 */
export function isTransient(err: unknown): boolean {
  const status = (err as { status?: unknown }).status
  if (typeof status === 'number') return status < 400 || status === 408 || status === 429 || status >= 500
  if (err instanceof MongoNetworkError || err instanceof MongoServerSelectionError) return true
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown } }
  if (e.name === 'TimeoutError' || e.name === 'MongoNotConnectedError' || e.name === 'MongoTopologyClosedError') return true
  return NETWORK_CODES.has(String(e.code)) || NETWORK_CODES.has(String(e.cause?.code))
}

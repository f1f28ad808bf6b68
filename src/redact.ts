/**
 * What must never be shown, logged or used as a metric label: credentials in URLs and secret
 * fields. One place for the rules, used by the logger (src/log.ts), the ingest's service
 * identifiers and `/xrpc/_health`.
 */

/** Field names whose values are secrets wherever they appear (any depth of a log line). */
const SECRET_KEY = /pass(word|wd)?$|secret|token|jwt|authorization|cookie/i

/** `scheme://user:pass@` (or `scheme://user@`) in any text. */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]+@/gi

/** `text` with the userinfo of every URL in it removed (`wss://u:p@host/x` → `wss://host/x`). */
export function stripUserinfo(text: string): string {
  return text.includes('@') ? text.replace(USERINFO, '$1') : text
}

/**
 * The public identifier of a service URL (a firehose host): scheme, host, port and path; no
 * userinfo, query or fragment (where credentials and tokens travel), no trailing slash.
 * `ws://user:pass@relay.example:8080/?token=x` → `ws://relay.example:8080`.
 */
export function serviceId(url: string): string {
  const u = new URL(url)
  return `${u.protocol}//${u.host}${u.pathname}`.replace(/\/+$/, '')
}

/** Longest nesting scrubbed; deeper values are replaced (log lines are never that deep). */
const MAX_DEPTH = 10

/**
 * A copy of `value` safe to log: values of secret fields ({@link SECRET_KEY}) replaced by
 * `[redacted]` and userinfo stripped from every string, at any depth; Errors become
 * `{ type, message, stack }` with the same treatment.
 */
export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return stripUserinfo(value)
  if (value === null || typeof value !== 'object') return value
  if (depth >= MAX_DEPTH) return '[too deep]'
  if (value instanceof Error) return scrub({ type: value.name, message: value.message, stack: value.stack }, depth)
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null ? '[redacted]' : scrub(v, depth + 1)
  return out
}

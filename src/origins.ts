/**
 * Origin patterns (CORS_ORIGINS, VIEW_URL_ORIGINS; README, Configuration), shared by the AppView's
 * CORS and the item views that the ingest and the AppView build (src/item-view.ts).
 */

/**
 * `@fastify/cors` origin option from the configured patterns: `*` allows any origin;
 * `scheme://*.host` matches any subdomain of host (not host itself); `scheme://host:*` matches
 * host with any port or none; other entries match exactly.
 */
export function corsOrigin(patterns: string[]): true | Array<string | RegExp> {
  if (patterns.includes('*')) return true
  return patterns.map((p) => {
    if (!p.includes('*')) return p
    const escaped = p.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')
    const re = escaped.replace('\\/\\/*\\.', '\\/\\/(?:[a-z0-9-]+\\.)+').replace(/:\*$/, '(?::\\d{1,5})?')
    if (re.includes('*')) throw new Error(`unsupported wildcard in origin ${p} (CORS_ORIGINS, VIEW_URL_ORIGINS)`)
    return new RegExp(`^${re}$`)
  })
}

/** Whether an origin (`https://host[:port]`) matches one of `patterns` (the syntax of {@link corsOrigin}). */
export function originMatcher(patterns: string[]): (origin: string) => boolean {
  const compiled = corsOrigin(patterns)
  if (compiled === true) return () => true
  return (origin) => compiled.some((p) => (typeof p === 'string' ? p === origin : p.test(origin)))
}

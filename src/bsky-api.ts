/**
 * `@atproto/api` (Bluesky's lexicons, RichText) takes about a second of CPU to load. The ingest
 * needs it only for posts it keeps and for confirming an account's status with its PDS, so it
 * loads it on first use: an ingest (and each of its restarts, and a standby taking over) starts
 * without it.
 */
let api: Promise<typeof import('@atproto/api')> | undefined

/** `@atproto/api`, loaded once per process on the first call. */
export function loadBskyApi(): Promise<typeof import('@atproto/api')> {
  return (api ??= import('@atproto/api'))
}

/**
 * Polls `check` every `intervalMs` until it returns true.
 * @throws Error `timed out waiting for <what>` after `timeoutMs`.
 */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, intervalMs = 100): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, intervalMs))
  }
  throw new Error(`timed out waiting for ${what}`)
}

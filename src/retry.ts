import pRetry from 'p-retry'

export interface RetryOptions {
  /** Wait before the second attempt, in ms; it doubles after each failure (p-retry's exponential backoff). */
  minMs: number
  /** Longest wait between two attempts, in ms. */
  maxMs: number
  /** Attempts after the first at most (default: no limit). */
  retries?: number
  /** Stops retrying: pending waits end at once and {@link retry} resolves undefined. */
  signal?: AbortSignal
  /**
   * Told each failure and its attempt number (from 1) before the wait; returning false gives up
   * (the error is thrown). Its own errors propagate.
   */
  onFailure?(error: Error, attempt: number): boolean | void | Promise<boolean | void>
}

/**
 * `task` until it succeeds, with exponential backoff between attempts (`p-retry`): the one
 * sleep-and-backoff helper of the ingest and the index (reconnects, backfill runs, repo fetches,
 * leader campaigns, a replica catching up). Unlike p-retry alone, every error is retried, a
 * TypeError from our own code included (a firehose connection or a backfill must not end for good
 * on one bad event), and an abort through `signal` resolves undefined instead of throwing.
 * @throws the last error when `retries` run out or `onFailure` gives up.
 */
export async function retry<T>(task: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T | undefined> {
  try {
    return await pRetry(
      async (attempt) => {
        try {
          return await task(attempt)
        } catch (err) {
          throw err instanceof TypeError || !(err instanceof Error) ? new Error(String((err as Error)?.message ?? err), { cause: err }) : err
        }
      },
      {
        retries: opts.retries ?? Infinity,
        minTimeout: opts.minMs,
        maxTimeout: opts.maxMs,
        signal: opts.signal,
        onFailedAttempt: async ({ error, attemptNumber }) => {
          if ((await opts.onFailure?.(error, attemptNumber)) === false) throw error
        },
      },
    )
  } catch (err) {
    if (opts.signal?.aborted) return undefined
    throw err
  }
}

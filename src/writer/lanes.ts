import pRetry from 'p-retry'
import PQueue from 'p-queue'
import type { Logger } from '../log.js'
import { isTransient } from './errors.js'

/** Longest wait between two attempts of a change that keeps failing on transient errors. */
const MAX_BACKOFF_MS = 30_000

/**
 * Per-repo lanes for live mode: the work of one repo (keyed by its owner's `users._id`) runs in
 * the order it was queued, one task at a time; different repos run side by side, at most
 * `concurrency` at once. A task that fails on a transient error (network, 5xx, 429, MongoDB
 * unreachable) is retried with backoff and jitter, holding only its own lane: it gives its slot
 * back while it waits, so other repos' changes flow. Any other error fails the task (the caller
 * records it) and the lane moves on.
 */
export class Lanes {
  private readonly slots: PQueue
  private readonly tails = new Map<string, Promise<unknown>>()
  private readonly waiting = new Map<string, string>()
  private queued = 0
  private stopping = false
  private readonly abort = new AbortController()

  constructor(
    concurrency: number,
    private readonly log: Logger,
  ) {
    this.slots = new PQueue({ concurrency })
  }

  /** Tasks queued or running. */
  get backlog(): number {
    return this.queued
  }

  /** Why repos are waiting on transient errors, by lane key (empty when none is). */
  get paused(): ReadonlyMap<string, string> {
    return this.waiting
  }

  /**
   * Queues `task` on lane `key`; resolves with its result once it succeeded, or rejects with its
   * permanent error (or, once {@link stop} is called, with the transient one it was retrying).
   */
  run<T>(key: string, what: string, task: () => Promise<T>): Promise<T> {
    this.queued++
    const previous = this.tails.get(key) ?? Promise.resolve()
    const result = previous.then(
      () => this.attempt(key, what, task),
      () => this.attempt(key, what, task),
    )
    const tail = result
      .catch(() => {})
      .finally(() => {
        this.queued--
        if (this.tails.get(key) === tail) this.tails.delete(key)
      })
    this.tails.set(key, tail)
    return result
  }

  /** Runs `fn` in lane `key` once, without retries: for work that must not interleave with that repo's changes. */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve()
    const result = previous.then(fn, fn)
    const tail = result.catch(() => {})
    this.tails.set(key, tail)
    void tail.finally(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key)
    })
    return result
  }

  private attempt<T>(key: string, what: string, task: () => Promise<T>): Promise<T> {
    return pRetry(() => this.slots.add(task) as Promise<T>, {
      retries: Infinity,
      minTimeout: 500,
      maxTimeout: MAX_BACKOFF_MS,
      randomize: true,
      signal: this.abort.signal,
      shouldRetry: ({ error }) => !this.stopping && isTransient(error),
      onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
        if (this.stopping || !isTransient(error) || retriesLeft === 0) return
        this.waiting.set(key, error.message)
        this.log.warn({ what, err: error.message, attempt: attemptNumber, backlog: this.queued }, 'mirroring paused for this repo; retrying')
      },
    }).finally(() => {
      if (this.waiting.delete(key) && this.waiting.size === 0) this.log.info({ what }, 'mirroring resumed')
    })
  }

  /** Stops retrying: tasks waiting on transient errors fail; running ones finish. Resolves when every lane is idle. */
  async stop(): Promise<void> {
    this.stopping = true
    this.abort.abort(new Error('writer stopping'))
    await Promise.all([...this.tails.values()])
  }
}

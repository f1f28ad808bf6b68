import { Counter, Gauge, Registry } from 'prom-client'
import type { Logger } from './log.js'
import { registerPartMetrics } from './metrics.js'

/** A part of the service that `ac-appview start` runs: the writer, the ingest or the AppView. */
export interface Part {
  name: string
  /** Starts it; rejects when it cannot start (a dependency down, a port taken). */
  start(): Promise<RunningPart>
}

export interface RunningPart {
  /** Stops it cleanly (finishes work in hand). */
  stop(): Promise<void>
  /** Rejects if the part dies while running; never settles otherwise. */
  failure?: Promise<never>
}

export interface PartStatus {
  name: string
  state: 'starting' | 'running' | 'failed' | 'stopped'
  /** Restarts after a failure since the supervisor started. */
  restarts: number
  /** The last failure, while the part is failed or restarting. */
  lastError?: string
  /** When the part entered its state (ISO 8601). */
  since: string
}

const supervisorMetrics = new Registry()
registerPartMetrics(supervisorMetrics)
const up = new Gauge({ name: 'ac_part_up', help: '1 while a part of `ac-appview start` runs', labelNames: ['part'], registers: [supervisorMetrics] })
const restarts = new Counter({
  name: 'ac_part_restarts_total',
  help: 'Restarts of a part after a failure',
  labelNames: ['part'],
  registers: [supervisorMetrics],
})

/** Restart policy: exponential backoff with jitter from 1 s to 5 min; it starts again from 1 s once a part ran 10 min. */
const MIN_BACKOFF_MS = 1000
const MAX_BACKOFF_MS = 5 * 60_000
const STABLE_MS = 10 * 60_000

/**
 * Runs parts side by side and keeps them running: a part that cannot start, or dies while
 * running, is logged at error level, shown as `failed` (in {@link status}: `/xrpc/_health`, the
 * dashboard; and in `ac_part_up`) and restarted with backoff ({@link MIN_BACKOFF_MS} doubling
 * to {@link MAX_BACKOFF_MS}, reset once it ran {@link STABLE_MS}). One failing part never stops
 * the others. {@link stop} stops them in order (the writer first, so its changes in hand are
 * finished while the rest still run; the AppView last, so it drains its requests).
 */
export class Supervisor {
  private readonly states = new Map<string, PartStatus>()
  private readonly running = new Map<string, RunningPart>()
  private readonly loops: Promise<void>[] = []
  private readonly abort = new AbortController()
  private stopping = false

  constructor(
    private readonly parts: Part[],
    private readonly log: Logger,
  ) {
    for (const p of parts) this.set(p.name, 'starting')
  }

  /** Starts every part; resolves once each has started or failed its first attempt. */
  async start(): Promise<void> {
    const first = this.parts.map((part) => new Promise<void>((settled) => this.loops.push(this.keep(part, settled))))
    await Promise.all(first)
  }

  /** Each part's state. */
  status(): PartStatus[] {
    return this.parts.map((p) => ({ ...this.states.get(p.name)! }))
  }

  /** Stops the parts in order; resolves when all are stopped. */
  async stop(): Promise<void> {
    this.stopping = true
    this.abort.abort()
    for (const part of this.parts) {
      const running = this.running.get(part.name)
      this.running.delete(part.name)
      if (running) {
        await running.stop().catch((err) => this.log.error({ part: part.name, err: (err as Error).message }, 'part did not stop cleanly'))
      }
      this.set(part.name, 'stopped')
    }
    await Promise.allSettled(this.loops)
  }

  /** Starts `part` and restarts it after each failure until the supervisor stops. */
  private async keep(part: Part, firstSettled: () => void): Promise<void> {
    let attempt = 0
    while (!this.stopping) {
      let startedAt = 0
      try {
        const running = await part.start()
        if (this.stopping) {
          await running.stop()
          break
        }
        this.running.set(part.name, running)
        startedAt = Date.now()
        this.set(part.name, 'running')
        this.log.info({ part: part.name }, 'part running')
        firstSettled()
        await (running.failure ?? new Promise<never>(() => {}))
      } catch (err) {
        if (this.stopping) break
        await this.running
          .get(part.name)
          ?.stop()
          .catch(() => {}) // what is left of a part that died
        this.running.delete(part.name)
        if (startedAt && Date.now() - startedAt > STABLE_MS) attempt = 0
        const waitMs = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** attempt++) * (0.75 + Math.random() / 2)
        this.set(part.name, 'failed', (err as Error).message)
        this.log.error(
          { part: part.name, err: (err as Error).message, restartInMs: Math.round(waitMs) },
          startedAt ? 'part failed; restarting' : 'part could not start; retrying',
        )
        firstSettled()
        await sleep(waitMs, this.abort.signal)
        if (this.stopping) break
        restarts.inc({ part: part.name })
        this.states.get(part.name)!.restarts++
        this.set(part.name, 'starting', (err as Error).message)
      }
    }
  }

  private set(name: string, state: PartStatus['state'], lastError?: string) {
    const previous = this.states.get(name)
    this.states.set(name, {
      name,
      state,
      restarts: previous?.restarts ?? 0,
      since: new Date().toISOString(),
      ...(lastError && state !== 'running' ? { lastError } : {}),
    })
    up.set({ part: name }, state === 'running' ? 1 : 0)
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true })
  })
}

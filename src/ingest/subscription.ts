import { websocket } from '@atproto/ws-client'
import { Frame } from '@atproto/xrpc-server'

/** One decoded `com.atproto.sync.subscribeRepos` message: its type (`#commit`, `#info`…) and body. */
export interface FirehoseMessage {
  type: string
  body: Record<string, unknown>
}

/** An error frame from the host (e.g. `FutureCursor`, `ConsumerTooSlow`); ends the connection. */
export class FirehoseErrorFrame extends Error {
  constructor(
    readonly code: string,
    message: string | undefined,
  ) {
    super(`${code}: ${message ?? 'error frame from the firehose host'}`)
  }
}

export interface SubscribeOptions {
  /** ws(s) base URL of the host. */
  service: string
  /** The cursor to resume from, asked at every (re)connect; undefined starts at the live tail. */
  cursor(): number | undefined
  /** Aborting ends the subscription. */
  signal: AbortSignal
  /**
   * Watchdog: a connection that delivers no message for this long is closed and re-dialled
   * (detection takes one to two windows); undefined: none. ws-client pings every `heartbeatMs` as well, so a dead
   * TCP connection is caught even sooner.
   */
  watchdogMs?: number
  heartbeatMs: number
  /** Longest wait between reconnect attempts (exponential backoff with jitter from 1 s). */
  maxReconnectSeconds: number
  /** Bytes of received-but-unread frames past which the socket is paused (backpressure). */
  highWaterMark?: number
  onConnect(): void
  onDisconnect(): void
  onReconnect(error: unknown, attempt: number): void
}

/**
 * `com.atproto.sync.subscribeRepos` on `service` as an async iterator of decoded messages,
 * reconnecting with backoff on network errors, heartbeat timeouts and watchdog timeouts (via
 * `@atproto/ws-client`). The iterator only advances when the consumer pulls, and the socket is
 * paused past `highWaterMark`: a slow consumer slows the host down instead of growing memory.
 * @throws FirehoseErrorFrame when the host sends an error frame (the caller decides what next).
 */
export async function* subscribeRepos(opts: SubscribeOptions): AsyncGenerator<FirehoseMessage> {
  const ws = websocket(
    () => {
      const cursor = opts.cursor()
      return `${opts.service}/xrpc/com.atproto.sync.subscribeRepos${cursor === undefined ? '' : `?cursor=${cursor}`}`
    },
    {
      dataMode: 'binary',
      signal: opts.signal,
      heartbeat: { intervalMs: opts.heartbeatMs },
      idleTimeoutMs: opts.watchdogMs,
      highWaterMark: opts.highWaterMark ?? 4 * 1024 * 1024,
      maxReconnectSeconds: opts.maxReconnectSeconds,
      onConnect: () => opts.onConnect(),
      onDisconnect: () => opts.onDisconnect(),
      onReconnect: (error, { attempt }) => opts.onReconnect(error, attempt),
    },
  )
  for await (const chunk of ws) {
    const frame = Frame.fromBytes(chunk)
    if (frame.isError()) throw new FirehoseErrorFrame(frame.code, frame.message)
    if (frame.isMessage() && frame.header.t && typeof frame.body === 'object' && frame.body !== null) {
      yield { type: frame.header.t, body: frame.body as Record<string, unknown> }
    }
  }
}

/** `@atproto/sync` and ws-client want a ws(s) URL; accept the PDS's http(s) URL too. */
export function wsUrl(service: string): string {
  return service.replace(/^http(s?):\/\//, 'ws$1://').replace(/\/+$/, '')
}

/** The http(s) URL of a ws(s) host, for its XRPC queries (listRepos…). */
export function httpUrl(service: string): string {
  return service.replace(/^ws(s?):\/\//, 'http$1://').replace(/\/+$/, '')
}

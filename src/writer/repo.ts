import { lexToJson, lexicons } from '@atproto/api'
import type { LexValue } from '@atproto/lexicon'
import { XrpcClient } from '@atproto/xrpc'
import pRetry, { AbortError } from 'p-retry'
import type { BlobInput } from '../collections/index.js'
import type { Logger } from '../log.js'
import { isTransient } from './errors.js'

/** A record as the PDS lists it: lexicon JSON. */
export interface RepoRecord {
  uri: string
  cid: string
  rkey: string
  value: Record<string, unknown>
}

export type RepoWrite =
  { action: 'create' | 'update'; collection: string; rkey: string; value: Record<string, unknown> } | { action: 'delete'; collection: string; rkey: string }

export interface WriteResult {
  uri: string
  cid?: string
}

/** `com.atproto.repo.applyWrites` takes at most 200 writes (AC's PDS limits, docs/data-model.md). */
export const MAX_WRITES_PER_CALL = 200

/** Write points per action in the PDS's repo-write budget: create 3, update 2, delete 1 (docs/data-model.md). */
const POINTS = { create: 3, update: 2, delete: 1 } as const

/** Longest a PDS request may take (a 50 MB video upload included); a hung PDS then counts as down. */
const REQUEST_TIMEOUT_MS = 120_000

/**
 * The `fetch` of every PDS call, which carries a password or a session token: always to
 * `pdsUrl`'s origin (after login, `@atproto/api` would follow the endpoint the DID document
 * names, which anyone who controls that document could point elsewhere), never following a
 * redirect (a 307 would re-send the login body to another origin), and giving up after
 * {@link REQUEST_TIMEOUT_MS}, keeping any caller's abort signal.
 */
function pinnedFetch(pdsUrl: string): typeof fetch {
  const origin = new URL(pdsUrl)
  return (input, init) => {
    const asked = new URL(input instanceof Request ? input.url : String(input))
    const url = new URL(asked.pathname + asked.search, origin)
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout
    // A Request carries its own method, headers and body; plain init keeps a byte body's Content-Length.
    return input instanceof Request ? fetch(new Request(url, input), { redirect: 'error', signal }) : fetch(url, { ...init, redirect: 'error', signal })
  }
}

/**
 * Whether the PDS is reachable, shared by the clients of one run: once a call has failed on
 * network errors or 5xx past all its retries, later calls make one attempt each (so a PDS that
 * is down costs one series of retries, not one per repo) until a call succeeds again.
 */
export class PdsHealth {
  private down = false

  /** Retries a call may make now: `retries` while the PDS is up, none while it is down. */
  retries(retries: number): number {
    return this.down ? 0 : retries
  }

  failed() {
    this.down = true
  }

  worked() {
    this.down = false
  }
}

export interface LoginOptions {
  /** Attempts after a network error or 5xx before giving up (default 8). */
  retries?: number
  /** Shared with the run's other clients (see {@link PdsHealth}). */
  health?: PdsHealth
}

/** PDS account credentials as AC keeps them in `users.atproto`. */
export interface AccountCredentials {
  did: string
  handle?: string
  password: string
}

type Headers = Record<string, string | undefined>

/**
 * The PDS's rate-limit state for one account, from its `ratelimit-*` headers (RateLimit header
 * fields draft, as `@atproto/xrpc-server` sends them). Writes wait for the reset rather than
 * fail when the budget is spent.
 */
class WriteBudget {
  /** The window's whole budget (`ratelimit-limit`), once a response told it. */
  limit?: number
  private remaining?: number
  private resetAt?: number
  private policy?: string

  constructor(
    private readonly did: string,
    private readonly log: Logger,
  ) {}

  /** Records the limit state a response carried. */
  observe(headers: Headers | undefined) {
    const remaining = Number(headers?.['ratelimit-remaining'])
    const reset = Number(headers?.['ratelimit-reset'])
    if (!Number.isFinite(remaining) || !Number.isFinite(reset)) return
    this.remaining = remaining
    this.resetAt = reset * 1000
    const limit = Number(headers?.['ratelimit-limit'])
    if (Number.isFinite(limit)) this.limit = limit
    this.policy = headers?.['ratelimit-policy']
  }

  /** Waits until the budget can pay `points`, if the last response said it cannot. */
  async reserve(points: number): Promise<void> {
    if (this.remaining === undefined || this.resetAt === undefined || this.remaining >= points) return
    await this.waitForReset(`${points} points needed, ${this.remaining} left`)
  }

  /** Waits for the window to reset after a 429 (Retry-After or ratelimit-reset). */
  async rateLimited(headers: Headers | undefined): Promise<void> {
    this.observe(headers)
    const retryAfter = Number(headers?.['retry-after'])
    if (Number.isFinite(retryAfter)) this.resetAt = Math.max(this.resetAt ?? 0, Date.now() + retryAfter * 1000)
    this.resetAt ??= Date.now() + 60_000
    await this.waitForReset('the PDS answered 429 Too Many Requests')
  }

  private async waitForReset(why: string) {
    const waitMs = Math.max(0, this.resetAt! - Date.now()) + 250 + Math.random() * 750
    this.log.info({ did: this.did, waitSeconds: Math.round(waitMs / 100) / 10, policy: this.policy, why }, 'waiting for the PDS write rate limit to reset')
    await new Promise((r) => setTimeout(r, waitMs))
    this.remaining = undefined
    this.resetAt = undefined
  }
}

/**
 * The tokens of one PDS session, as the fetch handler of an XrpcClient: every call carries the
 * access token; when the PDS answers 401 or `ExpiredToken`, the tokens are renewed once with
 * `com.atproto.server.refreshSession` (one renewal for concurrent calls) and the call is sent
 * again, as @atproto/api's CredentialSession does. That class is not used because it compiles
 * its own copy of every Bluesky lexicon per instance: about 6 ms of main-thread CPU per account,
 * seconds for AC's 978 accounts.
 */
class PdsSession {
  /** The tokens of the session. */
  session?: { accessJwt: string; refreshJwt: string }
  private refreshing?: Promise<void>
  /** Unauthenticated calls (login, refresh), with the shared compiled lexicons. */
  private readonly server: XrpcClient

  constructor(
    private readonly pdsUrl: string,
    private readonly fetch: typeof globalThis.fetch,
  ) {
    this.server = new XrpcClient((path, init) => fetch(new URL(path, pdsUrl), init), lexicons)
  }

  /** `com.atproto.server.createSession`; rejects as the XRPC call does. */
  async login(identifier: string, password: string): Promise<void> {
    this.session = (await this.server.call('com.atproto.server.createSession', undefined, { identifier, password })).data
  }

  readonly fetchHandler = async (path: string, init: RequestInit): Promise<Response> => {
    await this.refreshing?.catch(() => {})
    const token = this.session!.accessJwt
    const res = await this.send(path, init, token)
    if (!(await isExpired(res))) return res
    if (this.session!.accessJwt === token) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined))
      try {
        await this.refreshing
      } catch {
        return res // the caller sees the PDS's answer (RepoClient logs in again)
      }
    }
    await res.body?.cancel()
    return this.send(path, init, this.session!.accessJwt)
  }

  private send(path: string, init: RequestInit, token: string): Promise<Response> {
    const headers = new Headers(init.headers)
    headers.set('authorization', `Bearer ${token}`)
    return this.fetch(new URL(path, this.pdsUrl), { ...init, headers })
  }

  private async refresh(): Promise<void> {
    const res = await this.server.call('com.atproto.server.refreshSession', undefined, undefined, {
      headers: { authorization: `Bearer ${this.session!.refreshJwt}` },
    })
    this.session = res.data
  }
}

/** Whether the PDS refused a call's access token as expired or invalid (401, or 400 `ExpiredToken`). */
async function isExpired(res: Response): Promise<boolean> {
  if (res.status === 401) return true
  if (res.status !== 400) return false
  const body = (await res
    .clone()
    .json()
    .catch(() => undefined)) as { error?: string } | undefined
  return body?.error === 'ExpiredToken'
}

/**
 * One logged-in session on one repo. Logs in once (createSession is limited to 30 per 5
 * minutes per account); the session renews an expired access token, and a revoked session
 * is replaced by one new login and the call retried. Network errors and 5xx answers are
 * retried with backoff and jitter; 429 waits for the rate-limit reset; other 4xx fail at once.
 */
export class RepoClient {
  private readonly budget: WriteBudget
  /** The session (tokens); kept so a revoked one can be replaced. */
  private session?: PdsSession

  /** Authenticated once logged in; before that (a {@link reader}) the PDS's public reads only. */
  private xrpc: XrpcClient

  private constructor(
    readonly did: string,
    private readonly pdsUrl: string,
    private readonly account: AccountCredentials | undefined,
    private readonly log: Logger,
    private readonly retries: number,
    private readonly health: PdsHealth,
  ) {
    this.budget = new WriteBudget(did, log)
    const fetch = pinnedFetch(pdsUrl)
    this.xrpc = new XrpcClient((path, init) => fetch(new URL(path, pdsUrl), init), lexicons)
  }

  /**
   * Logs in as `account` on `pdsUrl`. Live mode passes few `retries`: it retries whole changes
   * itself, so an outage shows at once.
   * @throws when the PDS refuses the credentials or cannot be reached (the error names the DID,
   *   never the password or the PDS's address; the status of the PDS's answer is kept).
   */
  static async login(pdsUrl: string, account: AccountCredentials, log: Logger, opts: LoginOptions = {}): Promise<RepoClient> {
    const client = new RepoClient(account.did, pdsUrl, account, log, opts.retries ?? 8, opts.health ?? new PdsHealth())
    await client.relogin()
    return client
  }

  /**
   * A client of `did`'s repo on `pdsUrl` with no session: the reads the PDS serves to anyone
   * (describeRepo, listRecords, getRecord; the ATProto repository API), under the same retry,
   * rate-limit and pinning rules. Comparing a repo with MongoDB needs no login (a PDS login
   * hashes a password: tens of ms of the PDS's CPU per account); writes do (calling one
   * throws).
   */
  static reader(pdsUrl: string, did: string, log: Logger, opts: LoginOptions = {}): RepoClient {
    return new RepoClient(did, pdsUrl, undefined, log, opts.retries ?? 8, opts.health ?? new PdsHealth())
  }

  /**
   * A new session (`com.atproto.server.createSession`). The XRPC client shares @atproto/api's
   * compiled lexicon set: building one per agent costs milliseconds of CPU per account.
   */
  private async relogin(): Promise<void> {
    const account = this.account!
    const session = new PdsSession(this.pdsUrl, pinnedFetch(this.pdsUrl))
    try {
      await this.call(() => session.login(account.did, account.password).then(() => ({})), false)
    } catch (err) {
      throw pdsFailure(`login as ${account.did}`, err)
    }
    this.session = session
    this.xrpc = new XrpcClient(session, lexicons)
  }

  private query<T>(nsid: string, params: Record<string, unknown>) {
    return this.call(() => this.xrpc.call(nsid, params) as Promise<{ data: T; headers: Headers }>)
  }

  private procedure<T>(nsid: string, body: unknown, encoding = 'application/json') {
    if (!this.account) throw new Error(`${nsid} on ${this.did} needs a session; this client only reads`)
    return this.call(() => this.xrpc.call(nsid, undefined, body, { encoding }) as Promise<{ data: T; headers: Headers }>)
  }

  /** The collections this repo holds records in (`com.atproto.repo.describeRepo`). */
  async collections(): Promise<Set<string>> {
    const res = await this.query<{ collections: string[] }>('com.atproto.repo.describeRepo', { repo: this.did })
    return new Set(res.data.collections)
  }

  /** Every record of `collection` in this repo, paging through `com.atproto.repo.listRecords`. */
  async listRecords(collection: string): Promise<RepoRecord[]> {
    const out: RepoRecord[] = []
    let cursor: string | undefined
    do {
      const res = await this.query<{ records: Array<{ uri: string; cid: string; value: LexValue }>; cursor?: string }>('com.atproto.repo.listRecords', {
        repo: this.did,
        collection,
        limit: 100,
        cursor,
      })
      for (const r of res.data.records)
        out.push({ uri: r.uri, cid: r.cid, rkey: r.uri.split('/').pop()!, value: lexToJson(r.value) as Record<string, unknown> })
      cursor = res.data.records.length > 0 ? res.data.cursor : undefined
    } while (cursor)
    return out
  }

  /** One record, or undefined when the repo has none at `rkey`. */
  async getRecord(collection: string, rkey: string): Promise<RepoRecord | undefined> {
    try {
      const res = await this.query<{ uri: string; cid: string; value: LexValue }>('com.atproto.repo.getRecord', { repo: this.did, collection, rkey })
      return { uri: res.data.uri, cid: res.data.cid, rkey, value: lexToJson(res.data.value) as Record<string, unknown> }
    } catch (err) {
      if ((err as { error?: string }).error === 'RecordNotFound' || (err as { status?: number }).status === 404) return undefined
      throw err
    }
  }

  /** Changes the account's handle (`com.atproto.identity.updateHandle`). */
  async updateHandle(handle: string): Promise<void> {
    await this.procedure('com.atproto.identity.updateHandle', { handle })
  }

  /** Uploads a blob; returns its lexicon JSON blob ref. */
  async uploadBlob(blob: BlobInput): Promise<Record<string, unknown>> {
    try {
      const res = await this.procedure<{ blob: LexValue }>('com.atproto.repo.uploadBlob', blob.bytes, blob.mimeType)
      return lexToJson(res.data.blob) as Record<string, unknown>
    } catch (err) {
      if ((err as { status?: number }).status === 413)
        throw Object.assign(new Error(`${blob.mimeType} blob of ${blob.bytes.length} bytes is over the PDS's upload limit (HTTP 413)`), { status: 413 })
      throw err
    }
  }

  /**
   * Applies up to {@link MAX_WRITES_PER_CALL} writes atomically, first waiting for enough
   * write budget; results are in input order. A batch dearer than the PDS's whole write window
   * is split.
   */
  async applyWrites(writes: RepoWrite[]): Promise<WriteResult[]> {
    if (writes.length > MAX_WRITES_PER_CALL) throw new Error(`applyWrites takes at most ${MAX_WRITES_PER_CALL} writes`)
    const points = writes.reduce((n, w) => n + POINTS[w.action], 0)
    if (writes.length > 1 && this.budget.limit !== undefined && points > this.budget.limit) {
      // A batch dearer than the whole window could never pass: split it (not atomic any more,
      // but every write is idempotent by rkey).
      const half = Math.ceil(writes.length / 2)
      return [...(await this.applyWrites(writes.slice(0, half))), ...(await this.applyWrites(writes.slice(half)))]
    }
    await this.budget.reserve(points)
    const res = await this.procedure<{ results?: unknown[] }>('com.atproto.repo.applyWrites', {
      repo: this.did,
      validate: false, // the PDS does not know our lexicons; the writer validates first
      writes: writes.map((w) =>
        w.action === 'delete'
          ? { $type: 'com.atproto.repo.applyWrites#delete', collection: w.collection, rkey: w.rkey }
          : { $type: `com.atproto.repo.applyWrites#${w.action}`, collection: w.collection, rkey: w.rkey, value: w.value },
      ),
    })
    const results = res.data.results ?? []
    return writes.map((w, i) => {
      const r = results[i] as { uri?: string; cid?: string } | undefined
      return { uri: r?.uri ?? `at://${this.did}/${w.collection}/${w.rkey}`, cid: r?.cid }
    })
  }

  /** Runs one PDS call with the retry, rate-limit and session rules above; a redirect is never retried. */
  private async call<T extends { headers?: Headers | Record<string, string> }>(fn: () => Promise<T>, mayRelogin = this.account !== undefined): Promise<T> {
    let relogged = false
    const result = pRetry(
      async () => {
        try {
          const res = await fn()
          this.budget.observe(res.headers)
          return res
        } catch (err) {
          const { status, error, headers } = err as { status?: number; error?: string; headers?: Headers }
          if (status === 429) {
            await this.budget.rateLimited(headers)
            throw err // retried after the wait
          }
          if (mayRelogin && !relogged && (status === 401 || error === 'ExpiredToken' || error === 'InvalidToken' || error === 'AuthRequired')) {
            relogged = true
            this.log.info({ did: this.did, error }, 'session no longer valid; logging in again')
            await this.relogin()
            throw err // retried with the new session
          }
          if ((status !== undefined && status >= 400 && status < 500) || isRedirect(err)) throw new AbortError(err as Error)
          throw err
        }
      },
      {
        retries: this.health.retries(this.retries),
        minTimeout: 200,
        maxTimeout: 10_000,
        randomize: true,
        shouldConsumeRetry: ({ error }) => (error as { status?: number }).status !== 429,
        onFailedAttempt: ({ error, attemptNumber }) => {
          const status = (error as { status?: number }).status
          if (status !== 429) this.log.warn({ did: this.did, err: error.message, status, attemptNumber }, 'PDS request failed, retrying')
        },
      },
    )
    return result.then(
      (res) => {
        this.health.worked()
        return res
      },
      (err) => {
        if (isTransient(err)) this.health.failed()
        throw err
      },
    )
  }
}

/**
 * `err` of a PDS call as an Error saying that `what` failed and why (a redirect named as such),
 * keeping the PDS's status and error name (so {@link isTransient} still judges it); never the
 * PDS's address.
 */
export function pdsFailure(what: string, err: unknown): Error {
  const why = isRedirect(err) ? 'the PDS answered with a redirect, which credentials never follow' : (err as Error).message
  return Object.assign(new Error(`${what} failed: ${why}`), { status: (err as { status?: number }).status, error: (err as { error?: string }).error })
}

/**
 * Whether `err` is fetch's refusal of an answer that redirected (`redirect: 'error'`; its cause
 * says `unexpected redirect`), which is never retried. Causes are not shown: they may name PDS_URL.
 */
function isRedirect(err: unknown): boolean {
  for (let e = err as { message?: string; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++)
    if (/redirect/i.test(e.message ?? '')) return true
  return false
}

import { AtpAgent } from '@atproto/api'
import pRetry, { AbortError } from 'p-retry'
import type { BlobInput } from '../collections/index.js'
import type { Logger } from '../log.js'

/** A record as the PDS lists it: lexicon JSON. */
export interface RepoRecord {
  uri: string
  cid: string
  rkey: string
  value: Record<string, unknown>
}

export type RepoWrite =
  | { action: 'create' | 'update'; collection: string; rkey: string; value: Record<string, unknown> }
  | { action: 'delete'; collection: string; rkey: string }

export interface WriteResult {
  uri: string
  cid?: string
}

/** `com.atproto.repo.applyWrites` takes at most 200 writes (AC's PDS limits, ac-data-model.md). */
export const MAX_WRITES_PER_CALL = 200

/** PDS account credentials as AC keeps them in `users.atproto`. */
export interface AccountCredentials {
  did: string
  handle?: string
  password: string
}

/**
 * One logged-in session on one repo: login once (createSession is limited to 30 per 5 minutes
 * per account), refreshed by the agent when the access token expires. Network errors and 5xx
 * answers are retried with backoff and jitter; 4xx answers fail at once.
 */
export class RepoClient {
  private constructor(
    readonly did: string,
    private readonly agent: AtpAgent,
    private readonly log: Logger,
  ) {}

  /** @throws when the PDS refuses the credentials (the error names the DID, never the password). */
  static async login(pdsUrl: string, account: AccountCredentials, log: Logger): Promise<RepoClient> {
    const agent = new AtpAgent({ service: pdsUrl })
    try {
      await retry(() => agent.login({ identifier: account.did, password: account.password }), log)
    } catch (err) {
      throw new Error(`login to ${pdsUrl} as ${account.did} failed: ${(err as Error).message}`)
    }
    return new RepoClient(account.did, agent, log)
  }

  /** Every record of `collection` in this repo, paging through `com.atproto.repo.listRecords`. */
  async listRecords(collection: string): Promise<RepoRecord[]> {
    const out: RepoRecord[] = []
    let cursor: string | undefined
    do {
      const res = await retry(() => this.agent.com.atproto.repo.listRecords({ repo: this.did, collection, limit: 100, cursor }), this.log)
      for (const r of res.data.records) out.push({ uri: r.uri, cid: r.cid, rkey: r.uri.split('/').pop()!, value: r.value as Record<string, unknown> })
      cursor = res.data.records.length > 0 ? res.data.cursor : undefined
    } while (cursor)
    return out
  }

  /** Uploads a blob; returns its lexicon JSON blob ref. */
  async uploadBlob(blob: BlobInput): Promise<Record<string, unknown>> {
    const res = await retry(() => this.agent.com.atproto.repo.uploadBlob(blob.bytes, { encoding: blob.mimeType }), this.log)
    return res.data.blob.toJSON() as Record<string, unknown>
  }

  /** Applies up to {@link MAX_WRITES_PER_CALL} writes atomically; results are in input order. */
  async applyWrites(writes: RepoWrite[]): Promise<WriteResult[]> {
    if (writes.length > MAX_WRITES_PER_CALL) throw new Error(`applyWrites takes at most ${MAX_WRITES_PER_CALL} writes`)
    const res = await retry(
      () =>
        this.agent.com.atproto.repo.applyWrites({
          repo: this.did,
          validate: false, // the PDS does not know our lexicons; the writer validates first
          writes: writes.map((w) =>
            w.action === 'delete'
              ? { $type: 'com.atproto.repo.applyWrites#delete', collection: w.collection, rkey: w.rkey }
              : { $type: `com.atproto.repo.applyWrites#${w.action}`, collection: w.collection, rkey: w.rkey, value: w.value },
          ),
        }),
      this.log,
    )
    const results = res.data.results ?? []
    return writes.map((w, i) => {
      const r = results[i] as { uri?: string; cid?: string } | undefined
      return { uri: r?.uri ?? `at://${this.did}/${w.collection}/${w.rkey}`, cid: r?.cid }
    })
  }
}

/** Retries network errors and 5xx with exponential backoff and jitter; other errors fail at once. */
function retry<T>(fn: () => Promise<T>, log: Logger): Promise<T> {
  return pRetry(
    async () => {
      try {
        return await fn()
      } catch (err) {
        const status = (err as { status?: number }).status
        if (status !== undefined && status >= 400 && status < 500) throw new AbortError(err as Error)
        throw err
      }
    },
    {
      retries: 5,
      minTimeout: 200,
      maxTimeout: 10_000,
      randomize: true,
      onFailedAttempt: ({ error, attemptNumber }) => log.warn({ err: error.message, attemptNumber }, 'PDS request failed, retrying'),
    },
  )
}

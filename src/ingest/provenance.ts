import { XRPCError, XrpcClient } from '@atproto/xrpc'
import { LRUCache } from 'lru-cache'
import { loadBskyApi } from '../bsky-api.js'
import type { Logger } from '../log.js'
import type { Identity } from '../identity.js'

export interface ProvenanceOptions {
  identity: Identity
  /** Origins of the PDSes whose repos may own short codes (TRUSTED_PDS). */
  trustedPds: string[]
  /** Origins of the relays whose #identity, #account and #sync events are believed (TRUSTED_RELAYS). */
  trustedRelays: string[]
  log: Logger
}

/** An account's status as its PDS reports it: null when active. */
export interface ConfirmedStatus {
  status: string | null
}

/** How long a PDS's answer about a repo is reused, in ms (a flood of events costs one request per DID and minute). */
const CONFIRMATION_TTL_MS = 60_000
/** A PDS's answer is awaited this long, in ms. */
const CONFIRMATION_TIMEOUT_MS = 10_000

/**
 * Who may speak for a repo (issue 15). Anyone can publish a DID document naming AC's PDS and
 * serve signed commits of that DID from a host of their own; anyone can send `#account` events
 * about any DID. So:
 * - a repo is trusted (may own short codes) only when its PDS, by its DID document, is on
 *   TRUSTED_PDS **and** that PDS really hosts it: its commits came from that PDS itself, or the
 *   PDS answers `com.atproto.sync.getRepoStatus` for the DID;
 * - account status and identity events are believed from the DID's own PDS or a relay on
 *   TRUSTED_RELAYS; an account event from any other host is replaced by what the DID's PDS
 *   answers to `getRepoStatus`.
 * Answers are cached for a minute.
 */
export class Provenance {
  private readonly answers = new LRUCache<string, ConfirmedStatus | 'absent'>({ max: 10_000, ttl: CONFIRMATION_TTL_MS })

  constructor(private readonly opts: ProvenanceOptions) {}

  /**
   * Whether `did`, whose DID document names `pds` (an origin), may own short codes, given that
   * its data came from `from` (an origin; null: unknown).
   * @throws when the trusted PDS cannot be asked (network error, 5xx): the caller retries later.
   */
  async trusted(did: string, pds: string | null, from: string | null): Promise<boolean> {
    if (pds === null || !this.opts.trustedPds.includes(pds)) return false
    return from === pds || (await this.repoStatus(pds, did)) !== 'absent'
  }

  /**
   * Whether the host at origin `from` speaks for `did`'s account and identity: it is a relay on
   * TRUSTED_RELAYS or the PDS the DID document names (`refresh`: by a freshly resolved document,
   * as after a PDS migration).
   */
  async speaksFor(from: string, did: string, refresh = false): Promise<boolean> {
    return this.opts.trustedRelays.includes(from) || (await this.opts.identity.pdsOf(did, refresh)) === from
  }

  /**
   * `did`'s account status as the PDS its DID document names tells it; undefined when that PDS
   * has no such repo or cannot be asked (nothing is confirmed then).
   */
  async accountStatus(did: string): Promise<ConfirmedStatus | undefined> {
    const pds = await this.opts.identity.pdsOf(did)
    if (!pds) return undefined
    try {
      const answer = await this.repoStatus(pds, did)
      return answer === 'absent' ? undefined : answer
    } catch (err) {
      this.opts.log.warn({ did, pds, err: (err as Error).message }, 'could not confirm an account status with its PDS')
      return undefined
    }
  }

  /**
   * `com.atproto.sync.getRepoStatus` of `did` on `pds`: its status, or 'absent' (RepoNotFound).
   * @throws on network errors and other error answers (not cached).
   */
  private async repoStatus(pds: string, did: string): Promise<ConfirmedStatus | 'absent'> {
    const key = `${pds} ${did}`
    const cached = this.answers.get(key)
    if (cached) return cached
    let answer: ConfirmedStatus | 'absent'
    try {
      const { lexicons } = await loadBskyApi()
      const client = new XrpcClient(
        { service: pds, fetch: (input, init) => fetch(input, { ...init, redirect: 'error', signal: AbortSignal.timeout(CONFIRMATION_TIMEOUT_MS) }) },
        lexicons,
      )
      const { data } = (await client.call('com.atproto.sync.getRepoStatus', { did })) as { data: { active: boolean; status?: string } }
      answer = { status: data.active ? null : (data.status ?? 'deactivated') }
    } catch (err) {
      if (!(err instanceof XRPCError && err.error === 'RepoNotFound')) throw err
      answer = 'absent'
    }
    this.answers.set(key, answer)
    return answer
  }
}

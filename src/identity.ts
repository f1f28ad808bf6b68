import { getPdsEndpoint } from '@atproto/common-web'
import { IdResolver, MemoryCache } from '@atproto/identity'
import { RepoVerificationError } from '@atproto/repo'
import type { Config } from './config.js'
import type { Logger } from './log.js'

/** What the index keeps about an actor's identity. */
export interface ActorIdentity {
  did: string
  /** Verified handle (DID document and handle resolution agree), else null. */
  handle: string | null
  /** Origin of the actor's PDS from its DID document, else null. */
  pds: string | null
}

export interface IdentityOptions {
  plcUrl: string
  /** Resolve handles with `com.atproto.identity.resolveHandle` on this service instead of DNS/HTTPS. */
  handleResolverUrl?: string
  /** Dev and tests only: let identity resolution reach plain-http and loopback hosts. */
  allowPrivateNetwork: boolean
  log: Logger
}

/**
 * DID and handle resolution with a DID-document cache (without it, every commit costs a PLC
 * request). Handles are verified both ways, per the ATProto handle spec.
 */
export class Identity {
  readonly resolver: IdResolver
  private readonly handleResolverUrl?: string
  private readonly log: Logger

  constructor(opts: IdentityOptions) {
    this.resolver = new IdResolver({
      plcUrl: opts.plcUrl,
      didCache: new MemoryCache(),
      // The default fetch refuses loopback and plain http (SSRF protection); dev opts out.
      ...(opts.allowPrivateNetwork ? { fetch: globalThis.fetch } : {}),
    })
    this.handleResolverUrl = opts.handleResolverUrl
    this.log = opts.log
  }

  /**
   * Resolves `did`; `refresh` bypasses the cache (after an #identity event the cached document
   * still holds the old handle). Never throws: an unresolvable DID gives nulls, and is logged.
   */
  async resolve(did: string, refresh = false): Promise<ActorIdentity> {
    try {
      const data = await this.resolver.did.resolveAtprotoData(did, refresh)
      const pds = new URL(data.pds).origin
      const handle = (await this.resolveHandle(data.handle)) === did ? data.handle.toLowerCase() : null
      return { did, handle, pds }
    } catch (err) {
      this.log.warn({ did, err: (err as Error).message }, 'could not resolve DID')
      return { did, handle: null, pds: null }
    }
  }

  /**
   * The origin of the PDS that `did`'s document names (cached document unless `refresh`), or
   * null when the DID does not resolve or names no http(s) PDS. Never throws.
   */
  async pdsOf(did: string, refresh = false): Promise<string | null> {
    try {
      const doc = await this.resolver.did.resolve(did, refresh)
      const pds = doc && getPdsEndpoint(doc)
      return pds ? new URL(pds).origin : null
    } catch {
      return null
    }
  }

  /**
   * `check` run with `did`'s atproto signing key from the cached DID document, and once more
   * with a freshly resolved one when it fails with a RepoVerificationError (the key was rotated
   * since it was cached). The one place the ingest retries a verification.
   * @throws what `check` throws the second time, or the resolver's error.
   */
  async withSigningKey<T>(did: string, check: (key: string) => Promise<T>): Promise<T> {
    try {
      return await check(await this.resolver.did.resolveAtprotoKey(did))
    } catch (err) {
      if (!(err instanceof RepoVerificationError)) throw err
      return check(await this.resolver.did.resolveAtprotoKey(did, true))
    }
  }

  /** The DID a handle points at, or undefined. */
  async resolveHandle(handle: string): Promise<string | undefined> {
    try {
      if (!this.handleResolverUrl) return await this.resolver.handle.resolve(handle)
      const url = new URL('/xrpc/com.atproto.identity.resolveHandle', this.handleResolverUrl)
      url.searchParams.set('handle', handle)
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
      if (!res.ok) return undefined
      const body = (await res.json()) as { did?: unknown }
      return typeof body.did === 'string' ? body.did : undefined
    } catch {
      return undefined
    }
  }
}

/** {@link Identity} as configured: PLC_URL, HANDLE_RESOLVER_URL, ALLOW_PRIVATE_NETWORK. */
export function configuredIdentity(cfg: Pick<Config, 'PLC_URL' | 'HANDLE_RESOLVER_URL' | 'ALLOW_PRIVATE_NETWORK'>, log: Logger): Identity {
  return new Identity({
    plcUrl: cfg.PLC_URL,
    handleResolverUrl: cfg.HANDLE_RESOLVER_URL,
    allowPrivateNetwork: cfg.ALLOW_PRIVATE_NETWORK,
    log: log.child({ component: 'identity' }),
  })
}

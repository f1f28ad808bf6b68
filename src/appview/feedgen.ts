import { lexicons as bskyLexicons, type AppBskyFeedGetFeedSkeleton } from '@atproto/api'
import type { IdResolver } from '@atproto/identity'
import { XRPCError, verifyJwt } from '@atproto/xrpc-server'
import type { FastifyInstance } from 'fastify'
import type { FeedgenConfig } from '../config.js'
import { FEEDS, feedUri } from '../feeds/definitions.js'
import { FeedReader } from '../feeds/reader.js'
import { skeletonPage } from '../feeds/skeleton.js'
import { verifySig } from '../signature.js'
import type { CursorCodec } from './cursor.js'
import { method, type MethodDef } from './methods.js'
import type { ReadModel } from './read-model.js'
import { XrpcError, echo } from './xrpc.js'

export interface FeedGeneratorOptions extends FeedgenConfig {
  /** Resolves the signing keys of service-auth JWT issuers (viewers). */
  resolver: IdResolver
}

const SKELETON = 'app.bsky.feed.getFeedSkeleton'

/**
 * The feed generator's XRPC methods (ATProto feed generator spec, lexicons `app.bsky.feed.*` of
 * `@atproto/api`), answering for the feeds of src/feeds/definitions.ts:
 * - `app.bsky.feed.describeFeedGenerator`: `{ did, feeds: [{ uri }] }`, `did` the service DID;
 * - `app.bsky.feed.getFeedSkeleton`: `feed` (a feed's AT-URI), `limit` (1-100, default 50),
 *   `cursor` (opaque) → `{ feed: [{ post, feedContext? }], cursor? }`, newest first; error
 *   `UnknownFeed` (400) for a feed this service does not serve, `InvalidCursor` (400: not signed
 *   by this AppView, see CursorCodec). A
 *   service-auth JWT (`Authorization: Bearer …`, as Bluesky's AppView forwards the viewer's) is
 *   verified when present (audience the service DID, `lxm` this method; 401 with verifyJwt's
 *   error name when it fails) and never required; answers do not depend on the viewer yet.
 */
export function feedGeneratorMethods(index: ReadModel, opts: FeedGeneratorOptions, cursors: CursorCodec): Record<string, MethodDef> {
  const feeds = new FeedReader(index)
  const byUri = new Map(FEEDS.map((def) => [feedUri(opts.publisherDid, def), def]))
  const description = Buffer.from(JSON.stringify({ did: opts.serviceDid, feeds: [...byUri.keys()].map((uri) => ({ uri })) }))
  return {
    'app.bsky.feed.describeFeedGenerator': { maxAge: 300, lexicons: bskyLexicons, handler: async () => description },
    [SKELETON]: method<AppBskyFeedGetFeedSkeleton.QueryParams>({
      maxAge: 10,
      lexicons: bskyLexicons,
      auth: (authorization) => verifyViewer(authorization, opts),
      async handler({ feed, limit, cursor }) {
        const def = byUri.get(feed)
        if (!def) throw new XrpcError(400, 'UnknownFeed', `This feed generator does not serve ${echo(feed)}`)
        // `limit` is optional in the client's type; decoding the request applied the lexicon's default (50).
        const page = await skeletonPage(feeds, def, limit!, cursors.decode(cursor))
        const body: AppBskyFeedGetFeedSkeleton.OutputSchema = page.next ? { feed: page.feed, cursor: cursors.encode(page.next) } : { feed: page.feed }
        return Buffer.from(JSON.stringify(body))
      },
    }),
  }
}

/**
 * `GET /.well-known/did.json`: the did:web document of the service (W3C DID core; the service
 * entry Bluesky's AppView looks up: id `#bsky_fg`, type `BskyFeedGenerator`). Served only when
 * the service DID is `did:web:` of FEEDGEN_HOSTNAME; another DID is resolved elsewhere.
 */
export function installDidDocument(app: FastifyInstance, opts: FeedgenConfig): void {
  if (!opts.endpoint || opts.serviceDid !== `did:web:${encodeURIComponent(new URL(opts.endpoint).host)}`) return
  const doc = JSON.stringify({
    '@context': ['https://www.w3.org/ns/did/v1'],
    id: opts.serviceDid,
    service: [{ id: '#bsky_fg', type: 'BskyFeedGenerator', serviceEndpoint: opts.endpoint }],
  })
  app.get('/.well-known/did.json', (_req, reply) => reply.header('cache-control', 'public, max-age=300').type('application/json').send(doc))
}

/**
 * Verifies a service-auth JWT when the request carries one (`@atproto/xrpc-server` verifyJwt; the
 * issuer's signing key from its DID document, refreshed once on a bad signature).
 * @throws XrpcError 401 naming what failed (BadJwt, JwtExpired, BadJwtAudience, BadJwtSignature…).
 */
async function verifyViewer(authorization: string | undefined, opts: FeedGeneratorOptions): Promise<void> {
  if (authorization === undefined) return
  const [scheme, token, extra] = authorization.split(' ')
  if (scheme !== 'Bearer' || !token || extra !== undefined)
    throw new XrpcError(401, 'AuthenticationRequired', 'Authorization must be "Bearer <service-auth JWT>"')
  try {
    await verifyJwt(
      token,
      opts.serviceDid,
      SKELETON,
      (iss, refresh) => signingKey(opts.resolver, iss, refresh),
      (key, msg, sig, alg) => verifySig(key, msg, sig, { jwtAlg: alg, allowMalleableSig: true }),
    )
  } catch (err) {
    if (err instanceof XrpcError) throw err
    if (err instanceof XRPCError) throw new XrpcError(401, err.customErrorName ?? 'AuthenticationRequired', err.message)
    throw new XrpcError(401, 'AuthenticationRequired', `Could not verify the JWT: ${(err as Error).message}`)
  }
}

/** The atproto signing key of a JWT issuer: an account DID (a `#service` issuer is not a viewer). */
async function signingKey(resolver: IdResolver, iss: string, refresh: boolean): Promise<string> {
  if (iss.includes('#')) throw new XrpcError(401, 'BadJwtIss', `JWT issuer ${echo(iss)} is a service, not an account`)
  return resolver.did.resolveAtprotoKey(iss, refresh)
}

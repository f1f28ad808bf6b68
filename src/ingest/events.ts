import { parseAccount } from '@atproto/sync'
import { byNsid } from '../collections/index.js'
import { httpOrigin } from '../config.js'
import { POST_COLLECTION } from '../feeds/definitions.js'
import type { Logger } from '../log.js'
import type { Identity } from '../identity.js'
import { collectionOf, recordOpFromJson, type Indexer, type IndexOp, type RecordOp } from './indexer.js'
import { metrics } from './metrics.js'
import type { PostIndex } from './posts.js'
import type { FirehoseMessage } from './subscription.js'
import type { CommitVerifier } from './verify-pool.js'
import type { CommitBody, DecodedOp } from './verify.js'

/** One decoded event: its seq and time, and what it changes in the index. */
export interface DecodedEvent {
  seq: number
  time: string | null
  ops: IndexOp[]
}

export interface EventDecoderOptions {
  /** The host's identifier (its URL without credentials): metric labels. */
  service: string
  /** The host's URL (http(s) or ws(s)), compared with the PDS origins of DID documents. */
  url: string
  indexer: Indexer
  identity: Identity
  posts: PostIndex | undefined
  /** Origins of TRUSTED_PDS: every repo such a host streams is hosted there. */
  trustedPds: string[]
  /** Verify commit signatures and MST proofs. */
  verify: boolean
  /** Where commits are verified and decoded: worker threads, or this one (src/ingest/verify-pool.ts). */
  verifier: CommitVerifier
  log: Logger
}

/**
 * Turns one host's firehose messages into index operations: `#commit` into verified AC record and
 * post operations (with the actor's identity the first time), `#identity`, `#account` and `#sync`
 * into actor, status and resync operations, each only as far as the host speaks for the DID
 * (src/ingest/provenance.ts: its commits are signed by their repos, but trust and account status
 * come from the repos' own PDSes). Never rejects: an event that cannot be verified or parsed
 * becomes a resync of its repo (fetched whole and verified instead), so nothing stalls the stream.
 */
export class EventDecoder {
  private readonly origin: string
  private readonly trustedHost: boolean

  constructor(private readonly opts: EventDecoderOptions) {
    this.origin = httpOrigin(opts.url)
    this.trustedHost = opts.trustedPds.includes(this.origin)
  }

  /** Worker threads verifying commits (0: this thread). */
  get threads(): number {
    return this.opts.verifier.threads
  }

  /** The index operations of message `msg` with sequence number `seq`. */
  async decode(msg: FirehoseMessage, seq: number): Promise<DecodedEvent> {
    const time = typeof msg.body.time === 'string' ? msg.body.time : null
    try {
      return { seq, time, ops: await this.opsFor(msg) }
    } catch (err) {
      const did = msg.body.repo ?? msg.body.did
      metrics.verifyFailures.inc({ service: this.opts.service })
      this.opts.log.warn({ seq, did, err: (err as Error).message }, 'event failed verification or parsing: re-fetching its repo')
      return { seq, time, ops: typeof did === 'string' ? [{ type: 'resync', did }] : [] }
    }
  }

  private async opsFor(msg: FirehoseMessage): Promise<IndexOp[]> {
    const { indexer } = this.opts
    const body = msg.body as never
    switch (msg.type) {
      case '#commit':
        return this.commitOps(body)
      // Identity, account and sync events of actors the index knows nothing of are none of its
      // business (on a relay that is nearly all of them): no DID lookups, no rows.
      case '#identity': {
        const did = (body as { did: string }).did
        if (!(await indexer.knows(did))) return []
        // The DID's PDS may have changed with this very event: ask a fresh document before refusing.
        const speaks = (await indexer.provenance.speaksFor(this.origin, did)) || (await indexer.provenance.speaksFor(this.origin, did, true))
        return speaks ? indexer.actorOps(did, { from: this.origin, refresh: true }) : this.refuse(msg.type, did)
      }
      case '#account': {
        const evt = parseAccount(body)
        if (!evt || !(await indexer.knows(evt.did))) return []
        if (await indexer.provenance.speaksFor(this.origin, evt.did))
          return [{ type: 'status', did: evt.did, status: evt.active ? null : (evt.status ?? 'deactivated') }]
        const confirmed = await indexer.provenance.accountStatus(evt.did)
        return confirmed ? [{ type: 'status', did: evt.did, status: confirmed.status }] : this.refuse(msg.type, evt.did)
      }
      case '#sync': {
        const did = (body as { did: string }).did
        if (!(await indexer.knows(did))) return []
        return (await indexer.provenance.speaksFor(this.origin, did)) ? [{ type: 'resync', did }] : this.refuse(msg.type, did)
      }
      default:
        return []
    }
  }

  /** An event this host may not send about `did` (see Provenance): ignored and counted (logged at debug: a host may send floods). */
  private refuse(type: string, did: string): IndexOp[] {
    metrics.eventsRefused.inc({ service: this.opts.service, type })
    this.opts.log.debug({ type, did }, 'event refused: this host does not speak for that DID')
    return []
  }

  /**
   * The AC record and post operations of a commit. Commits touching no AC collection and no post
   * the post filter wants (most of a relay's stream) cost only these checks: they are neither
   * verified nor decoded further.
   */
  private async commitOps(body: CommitBody): Promise<IndexOp[]> {
    const { posts, indexer } = this.opts
    const trustedAuthor = this.trustedHost || !!posts?.trusts(body.repo)
    const wantsPosts = !!posts?.wants(body, trustedAuthor)
    if (!wantsPosts && !body.ops.some((op) => isAcPath(op.path))) return []
    const collections = wantsPosts ? WITH_POSTS : AC_COLLECTIONS
    const { verifier } = this.opts
    const verified = this.opts.verify
      ? await this.opts.identity.withSigningKey(body.repo, (key) => verifier.decode(body, key, collections))
      : await verifier.decode(body, null, collections)
    const ops = (await Promise.all(verified.map((op) => this.recordOp(body, op, trustedAuthor)))).filter((op) => op !== null)
    if (!ops.length) return []
    return [...(await indexer.actorOps(body.repo, { from: this.origin })), { type: 'commit', did: body.repo, rev: body.rev, ops }]
  }

  /** The index operation of one verified op: an AC record (or its deletion), or a post; null when none. */
  private async recordOp(body: CommitBody, op: DecodedOp, trustedAuthor: boolean): Promise<RecordOp | null> {
    if (op.collection === POST_COLLECTION) return this.opts.posts!.op(body.repo, op.rkey, op.cid, body.rev, op.record, op.action, body.time, trustedAuthor)
    if (op.action === 'delete') return { type: 'delete', uri: `at://${body.repo}/${op.collection}/${op.rkey}`, rev: body.rev }
    return recordOpFromJson(collectionOf(op.collection)!, body.repo, op.rkey, op.cid!, body.rev, op.record!, op.action)
  }
}

/** AC's collections (exact NSIDs): the ops of a commit that are verified and decoded. */
const AC_COLLECTIONS = [...byNsid.keys()]
/** AC's collections and posts, for a commit the post filter wants. */
const WITH_POSTS = [POST_COLLECTION, ...AC_COLLECTIONS]

/** Whether `nsid` is exactly one of AC's collections (the firehose's own filter is a prefix match). */
function isAcCollection(nsid: string): boolean {
  return collectionOf(nsid) !== undefined
}

/** `computer.aesthetic.painting/3k…` → whether the collection is one of AC's. */
function isAcPath(path: string): boolean {
  return isAcCollection(path.slice(0, path.indexOf('/')))
}

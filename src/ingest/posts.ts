import { jsonToLex, lexToJson } from '@atproto/lexicon'
import { cborToLexRecord } from '@atproto/repo'
import type { Transaction } from 'kysely'
import type { IndexDb, IndexSchema, PostTable } from '../db/index.js'
import { POST_COLLECTION } from '../feeds/definitions.js'
import { acLinks, type AcLinks, type AcTarget } from '../feeds/links.js'
import { loadBskyApi } from '../bsky-api.js'
import type { Logger } from '../log.js'
import { metrics } from './metrics.js'
import type { CommitBody } from './verify.js'

/** What a post points at on AC (a `post_ref` row without the post's own columns). */
export type PostRef = Extract<AcTarget, { via: string }>

/** A post version to keep: becomes a `post` row and its `post_ref` rows (indexedAt is set on commit). */
export type PostOp = Omit<PostTable, 'indexedAt'> & {
  type: 'post'
  /** What the firehose called it; only used for metrics. */
  action: 'create' | 'update'
  refs: PostRef[]
}

/** A post that leaves the index: deleted, or updated into one that no longer concerns AC. */
export interface PostDeleteOp {
  type: 'post-delete'
  uri: string
  rev: string
}

const POST_PATH = `${POST_COLLECTION}/`
const LINK_FEATURE = 'app.bsky.richtext.facet#link'
const EXTERNAL = 'app.bsky.embed.external'
const RECORD_WITH_MEDIA = 'app.bsky.embed.recordWithMedia'
/** Embed types that make a post's media, and what the `media` column calls them. */
const MEDIA: Record<string, 'image' | 'video'> = { 'app.bsky.embed.images': 'image', 'app.bsky.embed.video': 'video' }
const MEDIA_MARKERS = Object.keys(MEDIA).map((t) => Buffer.from(t))

/**
 * Which `app.bsky.feed.post` records the ingest keeps, on every firehose it follows: posts that
 * point at AC (link facets, external embeds, URLs in the text; see {@link acLinks}), and posts
 * with an image or video by an account on TRUSTED_PDS (the "AC artists" feed). Everything else
 * is dropped by {@link wants} before any decoding; only what passes is verified (as AC records
 * are) and decoded by {@link op}.
 *
 * Two small in-memory sets keep that decision free of I/O: the authors the index holds posts of
 * (so their updates and deletes reach the index), and the accounts the ingest has seen on
 * TRUSTED_PDS (loaded at start, kept current through {@link noteActor}).
 */
export class PostIndex {
  private constructor(
    private readonly links: AcLinks,
    private readonly log: Logger,
    private readonly authors: Set<string>,
    private readonly trusted: Set<string>,
  ) {}

  /** The post filter for AC's site at `publicUrl` (AC_PUBLIC_URL), with its sets loaded from `db`. */
  static async load(db: IndexDb, publicUrl: string, log: Logger): Promise<PostIndex> {
    const authors = await db.selectFrom('post').select('did').distinct().execute()
    const trusted = await db.selectFrom('actor').select('did').where('trusted', '=', 1).execute()
    return new PostIndex(acLinks(publicUrl), log, new Set(authors.map((r) => r.did)), new Set(trusted.map((r) => r.did)))
  }

  /** Whether the repo's account is known to live on TRUSTED_PDS. */
  trusts(did: string): boolean {
    return this.trusted.has(did)
  }

  /**
   * Counts `did` among the authors whose post updates and deletes are decoded, before its repo is
   * fetched (RepoFetcher): a post the snapshot brings in may be edited or deleted while the fetch
   * runs, and that commit must reach the index after the snapshot.
   */
  expectAuthor(did: string): void {
    this.authors.add(did)
  }

  /** Records an actor's trust as the ingest resolved it (Indexer.actorOps). */
  noteActor(did: string, trusted: boolean): void {
    if (trusted) this.trusted.add(did)
    else this.trusted.delete(did)
  }

  /**
   * Whether a commit may change a post the index keeps, from its op paths and raw CAR bytes
   * alone: a post created or updated in blocks that mention AC's host; one with an image or video
   * marker when `trustedAuthor`; an update or delete by an author the index holds posts of.
   */
  wants(body: CommitBody, trustedAuthor: boolean): boolean {
    let written = false
    for (const op of body.ops) {
      if (!op.path.startsWith(POST_PATH)) continue
      if (op.action !== 'create' && this.authors.has(body.repo)) return true
      if (op.action !== 'delete') written = true
    }
    return written && this.mayKeep(body.blocks, trustedAuthor)
  }

  /** Whether raw bytes (a commit's CAR, or one record's block) may hold a post the index keeps: AC's host named, or media by a trusted author. */
  private mayKeep(bytes: Uint8Array, trustedAuthor: boolean): boolean {
    if (this.links.mentioned(bytes)) return true
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    return trustedAuthor && MEDIA_MARKERS.some((m) => buf.includes(m))
  }

  /**
   * The post to keep from one `app.bsky.feed.post` record of a verified repo snapshot (a backfill
   * or resync), given its DAG-CBOR `block`, or null when the index keeps no such post. Screened
   * like a commit ({@link wants}) before decoding; otherwise as {@link op}, with no host time
   * (`sortAt` is `createdAt`, never later than now). Posts held but absent from the snapshot are
   * the caller's to remove (Indexer.applySnapshot).
   */
  async snapshotOp(did: string, rkey: string, cid: string, rev: string, block: Uint8Array, trustedAuthor: boolean): Promise<PostOp | null> {
    if (!this.mayKeep(block, trustedAuthor)) return null
    let record: Record<string, unknown>
    try {
      record = lexToJson(cborToLexRecord(block)) as Record<string, unknown>
    } catch (err) {
      this.log.warn({ uri: `at://${did}/${POST_COLLECTION}/${rkey}`, reason: (err as Error).message }, 'post is not a record: not indexed')
      return null
    }
    const op = await this.op(did, rkey, cid, rev, record, 'create', undefined, trustedAuthor)
    return op?.type === 'post' ? op : null
  }

  /**
   * The index operation for one verified post op (`record` as lexicon JSON, `lexToJson`'s form;
   * undefined for a delete), or null when
   * the index has nothing to do. A post is kept when it points at AC, or carries media and
   * `trustedAuthor`; a post that fails Bluesky's `app.bsky.feed.post` lexicon is dropped with a
   * warning naming it and why (its author's earlier version, if kept, leaves the index).
   * `time` is when the host sequenced the commit: `sortAt` is the post's `createdAt`, never later.
   */
  async op(
    did: string,
    rkey: string,
    cid: string | undefined,
    rev: string,
    record: Record<string, unknown> | undefined,
    action: 'create' | 'update' | 'delete',
    time: string | undefined,
    trustedAuthor: boolean,
  ): Promise<PostOp | PostDeleteOp | null> {
    const uri = `at://${did}/${POST_COLLECTION}/${rkey}`
    const leave = this.authors.has(did) ? { type: 'post-delete' as const, uri, rev } : null
    if (action === 'delete' || !cid) return leave
    const { lexicons, RichText } = await loadBskyApi()
    const json = (record ?? {}) as Record<string, any>
    const valid = lexicons.validate(POST_COLLECTION, jsonToLex(json))
    if (!valid.success) {
      metrics.posts.inc({ action: 'invalid' })
      this.log.warn({ uri, reason: valid.error.message }, 'post fails app.bsky.feed.post: not indexed')
      return leave
    }
    const refs = dedupe(linksOf(json, RichText).map((url) => this.links.target(url)))
    const about = refs.length > 0
    const media = mediaOf(json)
    if (!about && !(media && trustedAuthor)) return leave
    this.authors.add(did)
    return {
      type: 'post',
      action,
      uri,
      did,
      cid,
      rev,
      sortAt: sortAt(json.createdAt, time),
      about: about ? 1 : 0,
      media,
      refs: refs.filter((r): r is PostRef => r.kind !== 'site'),
    }
  }
}

/** Every URL a post carries: link facets, its external embed (alone or beside a record) and URLs in its text (found by `RichText`). */
function linksOf(post: Record<string, any>, RichText: typeof import('@atproto/api').RichText): string[] {
  const urls: string[] = []
  const linkFacets = (facets: unknown) => {
    for (const facet of (facets as Array<{ features?: Array<Record<string, unknown>> }> | undefined) ?? []) {
      for (const f of facet.features ?? []) if (f.$type === LINK_FEATURE && typeof f.uri === 'string') urls.push(f.uri)
    }
  }
  linkFacets(post.facets)
  const embed = post.embed?.$type === RECORD_WITH_MEDIA ? post.embed.media : post.embed
  if (embed?.$type === EXTERNAL && typeof embed.external?.uri === 'string') urls.push(embed.external.uri)
  const text = new RichText({ text: post.text ?? '' })
  text.detectFacetsWithoutResolution()
  linkFacets(text.facets)
  return urls
}

/** `image` or `video` when the post embeds one (alone or beside a quoted record). */
function mediaOf(post: Record<string, any>): 'image' | 'video' | null {
  const embed = post.embed?.$type === RECORD_WITH_MEDIA ? post.embed.media : post.embed
  return MEDIA[embed?.$type] ?? null
}

/** AC targets without repeats (a URL is often both a facet and text); nulls (not AC) dropped. */
function dedupe(targets: Array<AcTarget | null>): AcTarget[] {
  const seen = new Map<string, AcTarget>()
  for (const t of targets) if (t) seen.set(JSON.stringify(t), t)
  return [...seen.values()]
}

/** The post's `createdAt` as ISO UTC, but never later than `time` (as Bluesky's AppView sorts). */
function sortAt(createdAt: unknown, time: string | undefined): string {
  const limit = time && !Number.isNaN(Date.parse(time)) ? Date.parse(time) : Date.now()
  const created = typeof createdAt === 'string' ? Date.parse(createdAt) : NaN
  return new Date(Number.isNaN(created) ? limit : Math.min(created, limit)).toISOString()
}

type Trx = Transaction<IndexSchema>

/**
 * Writes or removes one post and its refs; a version older than the stored one (by repo rev) is
 * ignored, so replays change nothing.
 * @returns whether the index changed (false for a stale version, or the removal of a post it does
 *   not hold: an author's posts about other things, updated or deleted).
 */
export async function applyPostOp(trx: Trx, op: PostOp | PostDeleteOp, now: string): Promise<boolean> {
  const stored = await trx.selectFrom('post').select('rev').where('uri', '=', op.uri).executeTakeFirst()
  if (stored && stored.rev > op.rev) return false
  if (stored) await trx.deleteFrom('post_ref').where('post', '=', op.uri).execute() // a post's refs exist only with it
  if (op.type === 'post-delete') {
    if (stored) await trx.deleteFrom('post').where('uri', '=', op.uri).execute()
    return !!stored
  }
  const { type: _, action: __, refs, ...row } = op
  await trx
    .insertInto('post')
    .values({ ...row, indexedAt: now })
    .onConflict((oc) => oc.column('uri').doUpdateSet({ cid: row.cid, rev: row.rev, sortAt: row.sortAt, about: row.about, media: row.media }))
    .execute()
  if (refs.length)
    await trx
      .insertInto('post_ref')
      .values(refs.map((r) => ({ post: op.uri, kind: r.kind, via: r.via, key: r.key, sortAt: row.sortAt, did: row.did })))
      .execute()
  return true
}

/** Removes every post of `did` and their refs (the account was deleted). */
export async function removePosts(trx: Trx | IndexDb, did: string): Promise<void> {
  await trx
    .deleteFrom('post_ref')
    .where('post', 'in', (eb) => eb.selectFrom('post').select('uri').where('did', '=', did))
    .execute()
  await trx.deleteFrom('post').where('did', '=', did).execute()
}

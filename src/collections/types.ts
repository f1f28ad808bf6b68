import { ObjectId } from 'mongodb'
import { z } from 'zod'
import type { TapeVideo } from '../writer/tape-video.js'

/** The five AC kinds; each is the last segment of its record NSID `computer.aesthetic.<kind>`. */
export const KINDS = ['painting', 'mood', 'piece', 'kidlisp', 'tape'] as const
export type Kind = (typeof KINDS)[number]

/** Where a mirrored record lives, as AC's MongoDB remembers it (any of AC's three shapes). */
export interface Backref {
  rkey: string
  uri?: string
  cid?: string
}

/** A MongoDB document read and checked by its collection module. */
export interface SourceItem<F = Record<string, unknown>> {
  /** MongoDB ObjectId as 24 hex characters; the record's `ref`. */
  id: string
  /** Auth0 subject of the owner; null for anonymous items (AC stores no `user` field). */
  owner: string | null
  when: Date
  /** False when AC nuked or deleted the item: its record must not exist. */
  live: boolean
  /** The back-reference to follow: `atproto` when it holds an rkey, else `at`. */
  backref: Backref | null
  /** Every back-reference shape the document carries, as stored (to detect stale ones). */
  backrefShapes: { atproto?: Partial<Backref>; at?: Partial<Backref> }
  fields: F
}

/** A blob to upload before the record is written. */
export interface BlobInput {
  bytes: Uint8Array
  mimeType: string
}

/** What a collection module needs from the writer to build a record. */
export interface WriterContext {
  /** AC's public site, e.g. https://aesthetic.computer (permalinks, public media routes). */
  publicUrl: string
  /** Base URL of an object-storage bucket (AC_STORAGE_URL with {bucket} filled in). */
  bucketUrl(bucket: string): string
  /** HEAD on a storage URL: true when it exists. Only configured storage origins are reachable. */
  exists(url: string): Promise<boolean>
  /** GET a storage URL with the configured size cap and timeout. */
  fetchBytes(url: string, maxBytes?: number): Promise<Uint8Array>
  /** 512×512 contain-on-black thumbnail of an image (see src/writer/thumbnail.ts). */
  thumbnail(image: Uint8Array, maxBytes: number): Promise<BlobInput>
  /** A tape's frame ZIP converted to an MP4 and a JPEG thumbnail (see src/writer/tape-video.ts). */
  convertTape(zip: Uint8Array): Promise<TapeVideo>
}

/** What a collection module needs to word a Bluesky post sharing an item (`writer share`). */
export interface ShareContext extends WriterContext {
  /** The owner's AC handle without `@` (from `@handles`); null for anonymous items and users without one. */
  handle: string | null
}

/** A Bluesky post sharing an item, as AC's own scripts word it (ac-data-model.md, AC on Bluesky). */
export interface SharePost {
  /** The post's text, at most 300 graphemes; it holds `link`. */
  text: string
  /** AC's URL of the item, inside `text`; it becomes the post's link facet. */
  link: string
  /** An image (`app.bsky.embed.images`) or video (`app.bsky.embed.video`) of the item, with its alt text. */
  media?: { type: 'image' | 'video'; blob: BlobInput; alt: string }
}

/** What a collection module needs from the AppView to build a view. */
export interface ViewContext {
  publicUrl: string
  /** URL that serves a blob of `did` (the author's PDS getBlob, or the CDN template); undefined when unknown. */
  blobUrl(did: string, cid: string): string | undefined
}

/** A blob field of lexicon JSON, as stored in the index. */
export interface JsonBlob {
  $type: 'blob'
  ref: { $link: string }
  mimeType: string
  size: number
}

/** Raised when a MongoDB document cannot be mirrored; names the field and why. */
export class DocError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`)
  }
}

/** Raised when an item is valid but cannot be mirrored yet (e.g. a tape whose MP4 is pending). */
export class NotReady extends Error {}

/**
 * One AC kind: the single place that knows how its MongoDB documents become records,
 * how records are normalised for the index, and how they become views.
 */
export interface Collection<F = any> {
  kind: Kind
  /** Record collection NSID, from lexicons/computer/aesthetic/<kind>.json. */
  nsid: string
  /** AC's MongoDB collection. */
  mongo: string
  /** Short-code prefix in AC's URLs, if the kind has codes. */
  codePrefix?: '#' | '$' | '!'
  /** Whether AC has items of this kind without an owner (moods are never anonymous). */
  anonymous: boolean
  /** Kind-specific document fields; AC's other fields are ignored. */
  fieldsSchema: z.ZodType<F>
  /** Whether AC still shows the document (not nuked or deleted). */
  isLive(doc: Record<string, unknown>): boolean
  /** The record without its blobs; must be deterministic for unchanged input. */
  toRecord(item: SourceItem<F>, ctx: WriterContext): Promise<Record<string, unknown>>
  /** Blob fields and how to make each; a null result leaves an optional blob out. */
  blobs: Array<{ field: string; required: boolean; make(item: SourceItem<F>, ctx: WriterContext): Promise<BlobInput | null> }>
  /** Rewrites AC's known legacy record shapes into the lexicon's (ac-data-model.md). */
  normalize(record: Record<string, unknown>): Record<string, unknown>
  /** The slug AC's URLs name an item by (`painting~@handle/<slug>`), from its valid record; absent for kinds without such URLs. */
  urlSlug?(record: Record<string, any>): string
  /** Kind-specific view fields (design.md, itemView). */
  view(did: string, record: Record<string, any>, ctx: ViewContext): Record<string, unknown>
  /** The Bluesky post that shares an item (`writer share`); absent for kinds that are not shared by code. */
  share?(item: SourceItem<F>, ctx: ShareContext): Promise<SharePost>
}

// ---- helpers shared by the modules ----

/** AC's short codes: 1-10 letters or digits, case-sensitive (ac-data-model.md). */
const CODE = /^[A-Za-z0-9]{1,10}$/

/** Zod for AC's short codes (see {@link CODE}). */
export const codeSchema = z.string().regex(CODE, 'must be 1-10 letters or digits')

/** A code with its kind's prefix: `#abc` painting, `$abc` KidLisp, `!abc` tape; groups: prefix, code. */
export const PREFIXED_CODE = new RegExp(`^([#$!])(${CODE.source.slice(1, -1)})$`)

/** Reads a string field that may be absent. */
export const optionalString = z.string().optional()

/** Normalises an ObjectId or hex string to 24 hex characters. */
export function objectIdHex(value: unknown): string {
  if (value instanceof ObjectId) return value.toHexString()
  if (typeof value === 'string' && /^[0-9a-f]{24}$/i.test(value)) return value.toLowerCase()
  throw new DocError('_id', 'is not an ObjectId')
}

/** URL of a blob in the view: null-safe accessor for a lexicon JSON blob field. */
export function blobUrlOf(did: string, blob: unknown, ctx: ViewContext): string | undefined {
  const cid = (blob as JsonBlob | undefined)?.ref?.$link
  return typeof cid === 'string' ? ctx.blobUrl(did, cid) : undefined
}

/** `by @handle ` for a share's text and alt text, or nothing for an anonymous item. */
export function byline(handle: string | null): string {
  return handle ? `by @${handle} ` : ''
}

/** AC's permalink for a code: https://aesthetic.computer/#abc, /$abc or /!abc. */
export function permalink(publicUrl: string, prefix: string, code: string): string {
  return `${publicUrl}/${prefix}${code}`
}

/** AC's default buckets when a document names none (ac-data-model.md, media locations). */
const USER_BUCKET = 'user-aesthetic-computer'
const GUEST_BUCKET = 'art-aesthetic-computer'

/** Zod for a document's `bucket`: an S3 bucket name (it becomes part of a URL). */
export const bucketSchema = z.string().min(3).max(63).regex(/^[a-z0-9.-]+$/, 'is not a bucket name').optional()

/** `{bucket}/{user}` for an owner's media, `{bucket}` for a guest's; the owner is URL-encoded. */
export function ownerFolder(owner: string | null, bucket: string | undefined, ctx: WriterContext): string {
  const base = ctx.bucketUrl(bucket ?? (owner ? USER_BUCKET : GUEST_BUCKET))
  return owner ? `${base}/${pathSegment(owner)}` : base
}

/** URL-encodes one path segment, dot segments included, so no value can climb out of its folder. */
export function pathSegment(value: string): string {
  return encodeURIComponent(value).replace(/^\.{1,2}$/, (dots) => '%2E'.repeat(dots.length))
}

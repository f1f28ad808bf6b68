import { z } from 'zod'
import { lexicons } from '../lexicon/lexicons.js'

/** AC's kinds; each is the last segment of its record NSID `computer.aesthetic.<kind>`. */
export const KINDS = ['painting', 'mood', 'piece', 'kidlisp', 'tape', 'news', 'paper'] as const
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
  /**
   * A tape's frame ZIP as an MP4 and a JPEG thumbnail (AC's converter's rules, see
   * src/writer/tape-video.ts), conversions one at a time. @throws naming the file or rule that failed.
   */
  convertTape(zip: Uint8Array): Promise<{ mp4: Uint8Array; thumbnail: Uint8Array }>
}

/** What a collection module needs to word a Bluesky post sharing an item (`writer share`). */
export interface ShareContext extends WriterContext {
  /** The owner's AC handle without `@` (from `@handles`); null for anonymous items and users without one. */
  handle: string | null
}

/** A Bluesky post sharing an item, as AC's own scripts word it (docs/data-model.md, "AC on Bluesky"). */
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
  /**
   * A URL the record carries (its `field`), or undefined when it may not be served: only https
   * URLs on AC's or the configured origins (VIEW_URL_ORIGINS) are; the rest are dropped and
   * counted. URLs derived from the code (`acUrl`) or the author's blobs need no check.
   */
  recordUrl(field: string, url: unknown): string | undefined
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
 * One AC kind, as every part meets it: its record NSID, how its records (AC's legacy shapes
 * included) are normalised for the index, how they become views. The single place that knows a
 * kind; see {@link MirroredCollection} for the kinds the writer mirrors from MongoDB.
 */
export interface Collection {
  kind: Kind
  /** Record collection NSID, from lexicons/computer/aesthetic/<kind>.json. */
  nsid: string
  /** Short-code prefix in AC's URLs, if the kind has codes. */
  codePrefix?: '#' | '$' | '!'
  /** Rewrites AC's known legacy record shapes into the lexicon's (docs/data-model.md). */
  normalize(record: Record<string, unknown>): Record<string, unknown>
  /** The slug AC's URLs name an item by (`painting~@handle/<slug>`), from its valid record; absent for kinds without such URLs. */
  urlSlug?(record: Record<string, any>): string
  /** Kind-specific view fields (docs/contract.md, itemView). */
  view(did: string, record: Record<string, any>, ctx: ViewContext): Record<string, unknown>
  /** The view field holding long text, cut in feeds (`truncated: true`) and whole in resolveCode. */
  longText?: string
  /** Synthetic records of this kind, for benchmarks and fuzz tests (src/appview/synthetic.ts). */
  synthetic: {
    /** How many an AC-scale index holds: AC's count (February 2026) with some room. */
    count: number
    /** A lexicon-valid record, deterministic for `n` and `random`; `base` holds `$type`, `when` and `ref`. */
    record(n: number, s: SyntheticContext): Record<string, unknown>
  }
}

/** What {@link Collection.synthetic} gets to build a record. */
export interface SyntheticContext {
  base: { $type: string; when: string; ref: string }
  /** The item's short code (without prefix) for kinds with codes, else null. */
  code: string | null
  random(): number
  /** A blob ref of `mimeType` and `size` bytes (its CID made up from the item). */
  blob(mimeType: string, size: number): JsonBlob
}

/**
 * A kind AC keeps in MongoDB, which the writer mirrors into its owners' repos: how a document
 * becomes a record (and its blobs), when it is live, where its back-references go. Kinds AC
 * writes to the network itself (papers) are plain {@link Collection}s.
 */
export interface MirroredCollection<F = any> extends Collection {
  /** AC's MongoDB collection. */
  mongo: string
  /** Whether a document of the collection is the kind's to mirror at all (news pulled from Bluesky are not); default every document. Others are ignored, not reported. */
  mirrors?(doc: Record<string, unknown>): boolean
  /** MongoDB fields holding back-references to write: `atproto` for every kind, tapes also AC's `at`. */
  backrefFields: ReadonlyArray<'atproto' | 'at'>
  /** Whether AC has items of this kind without an owner (moods are never anonymous). */
  anonymous: boolean
  /** Kind-specific document fields; AC's other fields are ignored. */
  fieldsSchema: z.ZodType<F>
  /** Whether AC still shows the document (not nuked or deleted). */
  isLive(doc: Record<string, unknown>): boolean
  /** The record without its blobs; must be deterministic for unchanged input. @throws NotReady when the item cannot be mirrored yet. */
  toRecord(item: SourceItem<F>, ctx: WriterContext): Promise<Record<string, unknown>>
  /** Blob fields and how to make each; a null result leaves an optional blob out. */
  blobs: Array<{ field: string; required: boolean; make(item: SourceItem<F>, ctx: WriterContext): Promise<BlobInput | null> }>
  /** The Bluesky post that shares an item (`writer share`); absent for kinds that are not shared by code. */
  share?(item: SourceItem<F>, ctx: ShareContext): Promise<SharePost>
}

// ---- helpers shared by the modules ----

/** AC's short codes: 1-10 letters or digits, case-sensitive (docs/data-model.md). */
const CODE = /^[A-Za-z0-9]{1,10}$/

/** Zod for AC's short codes (see {@link CODE}). */
export const codeSchema = z.string().regex(CODE, 'must be 1-10 letters or digits')

/** A code with its kind's prefix: `#abc` painting, `$abc` KidLisp, `!abc` tape; groups: prefix, code. */
export const PREFIXED_CODE = new RegExp(`^([#$!])(${CODE.source.slice(1, -1)})$`)

/** Reads a string field that may be absent. */
export const optionalString = z.string().optional()

/** Normalises an ObjectId (anything with `toHexString`, so kinds need not load the MongoDB driver) or hex string to 24 hex characters. */
export function objectIdHex(value: unknown): string {
  const hex = typeof (value as { toHexString?: unknown })?.toHexString === 'function' ? (value as { toHexString(): string }).toHexString() : value
  if (typeof hex === 'string' && /^[0-9a-f]{24}$/i.test(hex)) return hex.toLowerCase()
  throw new DocError('_id', 'is not an ObjectId')
}

/** A blob field's `maxSize` in its record lexicon (lexicons/computer/aesthetic/<kind>.json): the one place the limit is stated. */
export function blobMaxSize(nsid: string, field: string): number {
  const def = lexicons.getDefOrThrow(nsid) as { record?: { properties?: Record<string, { maxSize?: number }> } }
  const max = def.record?.properties?.[field]?.maxSize
  if (max === undefined) throw new Error(`${nsid}#${field} declares no maxSize`)
  return max
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

/** AC's default buckets when a document names none (docs/data-model.md, "Media"). */
const USER_BUCKET = 'user-aesthetic-computer'
const GUEST_BUCKET = 'art-aesthetic-computer'

/** Zod for a document's `bucket`: an S3 bucket name (it becomes part of a URL). */
export const bucketSchema = z
  .string()
  .min(3)
  .max(63)
  .regex(/^[a-z0-9.-]+$/, 'is not a bucket name')
  .optional()

/** `{bucket}/{user}` for an owner's media, `{bucket}` for a guest's; the owner is URL-encoded. */
export function ownerFolder(owner: string | null, bucket: string | undefined, ctx: WriterContext): string {
  const base = ctx.bucketUrl(bucket ?? (owner ? USER_BUCKET : GUEST_BUCKET))
  return owner ? `${base}/${pathSegment(owner)}` : base
}

/** URL-encodes one path segment, dot segments included, so no value can climb out of its folder. */
export function pathSegment(value: string): string {
  return encodeURIComponent(value).replace(/^\.{1,2}$/, (dots) => '%2E'.repeat(dots.length))
}

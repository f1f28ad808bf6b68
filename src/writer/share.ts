import { UnicodeString, lexicons as bskyLexicons } from '@atproto/api'
import { jsonToLex } from '@atproto/lexicon'
import type { Db, Document } from 'mongodb'
import sharp from 'sharp'
import {
  PREFIXED_CODE,
  mirrored,
  readDoc,
  type BlobInput,
  type MirroredCollection,
  type Kind,
  type SourceItem,
  type WriterContext,
} from '../collections/index.js'
import { POST_COLLECTION } from '../feeds/definitions.js'
import type { Logger } from '../log.js'
import { UsageError } from '../usage.js'
import { findAccount, findAccountByDid, type Account } from './accounts.js'
import type { HostedAccount } from './bsky-account.js'
import { RepoClient } from './repo.js'
import { deterministicRkey } from './rkey.js'

/**
 * Who posts a share: `owner`, the item's owner from their account on AC's PDS (the guest
 * account for anonymous items); `account`, AC's own account (AC_BSKY_DID).
 */
export type ShareAs = 'owner' | 'account'

export interface ShareOptions {
  db: Db
  /** AC's PDS (PDS_URL), where owners' accounts live. */
  pdsUrl: string
  ctx: WriterContext
  log: Logger
  /** `users._id` of the guest account that owns anonymous items (AC_GUEST_USER). */
  guestUser: string
  /** AC's own account (AC_BSKY_*): needed to share `as: 'account'`, or to delete a share it posted. */
  account?: HostedAccount
}

/** What `share` or `unshare` did. */
export interface ShareReport {
  code: string
  kind: Kind
  /**
   * `created`: posted now; `adopted`: a post an interrupted run had made was found and recorded;
   * `unchanged`: shared already; `deleted`: the post was deleted (unshare); `absent`: nothing was shared.
   */
  action: 'created' | 'adopted' | 'unchanged' | 'deleted' | 'absent'
  uri?: string
  cid?: string
}

/** Where a share lives, as the item's MongoDB document records it (`bluesky`, the shape of AC's mood mirrors). */
interface ShareBackref {
  uri: string
  rkey: string
  /** Set once the post is known to exist; absent while a share is under way. */
  cid?: string
}

/** `app.bsky.embed.images` takes images of at most this many bytes. */
const IMAGE_MAX_BYTES = 1_000_000

/**
 * Posts the item with `code` (`#abc` painting, `$abc` KidLisp, `!abc` tape) to Bluesky as AC's
 * scripts do (its collection module's `share`: text, a link facet on AC's URL, an image embed
 * with alt text for a painting, an `app.bsky.embed.video` for a tape), from `as`'s repo.
 *
 * Never posts twice: the post's rkey is derived from the item (src/writer/rkey.ts), and before
 * posting, its intended uri is written to the document's `bluesky {uri, rkey}`; the cid follows
 * once the post exists. A rerun (after a crash anywhere, or simply a second run, whatever `as`
 * says) finds that back-reference and completes or confirms the same post.
 * @throws UsageError naming what the operator must change: a malformed or unknown code, a nuked
 *   item, an owner without a PDS account, AC's account not configured, a shared post deleted
 *   outside ac-appview (unshare it first); Error when the PDS refuses the post.
 */
export async function share(code: string, as: ShareAs, opts: ShareOptions): Promise<ShareReport> {
  const { col, doc, item } = await findItem(code, opts.db)
  if (!item.live) throw new UsageError(`${code} is nuked or deleted in MongoDB: not shared`)
  let backref = shareBackref(doc)
  if (!backref) {
    const did = as === 'account' ? requireAccount(opts, code).credentials.did : (await ownerAccount(item, code, opts)).did
    const rkey = deterministicRkey(item.id, item.when)
    const intent = { uri: `at://${did}/${POST_COLLECTION}/${rkey}`, rkey }
    const claimed = await opts.db
      .collection(col.mongo)
      .updateOne({ _id: doc._id, 'bluesky.uri': { $exists: false } }, { $set: { 'bluesky.uri': intent.uri, 'bluesky.rkey': rkey } })
    backref = claimed.modifiedCount ? intent : shareBackref((await opts.db.collection(col.mongo).findOne({ _id: doc._id }))!)!
  }
  const report = { code, kind: col.kind, uri: backref.uri }
  const client = await loginAs(didOf(backref.uri), code, opts)
  const existing = await client.getRecord(POST_COLLECTION, backref.rkey)
  if (existing) {
    if (existing.cid === backref.cid) return { ...report, action: 'unchanged', cid: existing.cid }
    await recordCid(opts.db, col, doc, existing.cid)
    return { ...report, action: 'adopted', cid: existing.cid }
  }
  if (backref.cid)
    throw new UsageError(`${code} was shared as ${backref.uri}, which no longer exists (deleted outside ac-appview): unshare it to forget it, then share again`)
  const value = await postRecord(col, item, client, opts)
  let cid: string | undefined
  try {
    cid = (await client.applyWrites([{ action: 'create', collection: POST_COLLECTION, rkey: backref.rkey, value }]))[0].cid
  } catch (err) {
    cid = (await client.getRecord(POST_COLLECTION, backref.rkey))?.cid // another run posted it meanwhile
    if (!cid) throw new Error(`${code}: the PDS refused the post: ${(err as Error).message}`, { cause: err })
  }
  await recordCid(opts.db, col, doc, cid!)
  opts.log.info({ code, uri: backref.uri }, 'shared on Bluesky')
  return { ...report, action: 'created', cid }
}

/**
 * Deletes the post that shared `code` (`writer share --unshare`), nuked items included, and
 * unsets the document's `bluesky` back-reference. A post already gone is simply forgotten.
 * @throws UsageError for an unknown code, or when no credentials for the posting repo are configured.
 */
export async function unshare(code: string, opts: ShareOptions): Promise<ShareReport> {
  const { col, doc } = await findItem(code, opts.db)
  const backref = shareBackref(doc)
  if (!backref) return { code, kind: col.kind, action: 'absent' }
  const client = await loginAs(didOf(backref.uri), code, opts)
  if (await client.getRecord(POST_COLLECTION, backref.rkey)) await client.applyWrites([{ action: 'delete', collection: POST_COLLECTION, rkey: backref.rkey }])
  await opts.db.collection(col.mongo).updateOne({ _id: doc._id }, { $unset: { bluesky: '' } })
  opts.log.info({ code, uri: backref.uri }, 'share deleted from Bluesky')
  return { code, kind: col.kind, action: 'deleted', uri: backref.uri }
}

/** The collection, MongoDB document and checked item of a prefixed code. @throws Error naming what is wrong. */
async function findItem(code: string, db: Db): Promise<{ col: MirroredCollection; doc: Document; item: SourceItem }> {
  const match = PREFIXED_CODE.exec(code)
  if (!match) throw new UsageError(`not a code: ${JSON.stringify(code)} (expected # painting, $ KidLisp or ! tape, then 1-10 letters or digits)`)
  const col = mirrored.find((c) => c.codePrefix === match[1])!
  const doc = await db.collection(col.mongo).findOne({ code: match[2] })
  if (!doc) throw new UsageError(`no ${col.kind} has the code ${code}`)
  try {
    return { col, doc, item: readDoc(col, doc) }
  } catch (err) {
    throw new UsageError(`${code}: ${(err as Error).message}`)
  }
}

function shareBackref(doc: Document): ShareBackref | undefined {
  const b = doc.bluesky as Partial<ShareBackref> | undefined
  return typeof b?.uri === 'string' && typeof b.rkey === 'string' ? { uri: b.uri, rkey: b.rkey, cid: typeof b.cid === 'string' ? b.cid : undefined } : undefined
}

async function recordCid(db: Db, col: MirroredCollection, doc: Document, cid: string): Promise<void> {
  await db.collection(col.mongo).updateOne({ _id: doc._id }, { $set: { 'bluesky.cid': cid } })
}

function didOf(uri: string): string {
  return uri.split('/')[2]
}

function requireAccount(opts: ShareOptions, code: string): HostedAccount {
  if (!opts.account) throw new UsageError(`${code}: sharing as AC's account needs AC_BSKY_DID and AC_BSKY_PASSWORD`)
  return opts.account
}

/** The PDS account of the item's owner (the guest account for an anonymous item). */
async function ownerAccount(item: SourceItem, code: string, opts: ShareOptions): Promise<Account> {
  const owner = item.owner ?? opts.guestUser
  const account = await findAccount(opts.db, owner, opts.log)
  if (!account) throw new UsageError(`${code}: its owner ${owner} has no PDS account (share it --as account)`)
  return account
}

/** A session on the repo of `did`: AC's own account, or an AC user's account on AC's PDS. */
async function loginAs(did: string, code: string, opts: ShareOptions): Promise<RepoClient> {
  if (opts.account?.credentials.did === did) return RepoClient.login(opts.account.pdsUrl, opts.account.credentials, opts.log)
  const account = await findAccountByDid(opts.db, did, opts.log)
  if (!account) throw new UsageError(`${code} was shared from ${did}, whose credentials are not configured (AC_BSKY_* or an AC user's)`)
  return RepoClient.login(opts.pdsUrl, account, opts.log)
}

/**
 * The `app.bsky.feed.post` for an item: the collection module's text with a link facet on AC's
 * URL (byte offsets in UTF-8), its media uploaded to `client`'s repo (an image scaled to fit
 * the embed's limit, with its aspect ratio), `createdAt` now; checked against Bluesky's lexicon.
 */
async function postRecord(col: MirroredCollection, item: SourceItem, client: RepoClient, opts: ShareOptions): Promise<Record<string, unknown>> {
  const handle = item.owner ? ((await opts.db.collection<{ _id: string; handle?: string }>('@handles').findOne({ _id: item.owner }))?.handle ?? null) : null
  const post = await col.share!(item, { ...opts.ctx, handle })
  const text = new UnicodeString(post.text)
  const at = post.text.indexOf(post.link)
  const record: Record<string, unknown> = {
    $type: POST_COLLECTION,
    text: post.text,
    facets: [
      {
        index: { byteStart: text.utf16IndexToUtf8Index(at), byteEnd: text.utf16IndexToUtf8Index(at + post.link.length) },
        features: [{ $type: 'app.bsky.richtext.facet#link', uri: post.link }],
      },
    ],
    createdAt: new Date().toISOString(),
  }
  if (post.media?.type === 'image') {
    const image = await fitImage(post.media.blob)
    record.embed = {
      $type: 'app.bsky.embed.images',
      images: [{ image: await client.uploadBlob(image.blob), alt: post.media.alt, aspectRatio: image.aspectRatio }],
    }
  } else if (post.media?.type === 'video') {
    record.embed = { $type: 'app.bsky.embed.video', video: await client.uploadBlob(post.media.blob), alt: post.media.alt }
  }
  const valid = bskyLexicons.validate(POST_COLLECTION, jsonToLex(record as never))
  if (!valid.success) throw new Error(`the post for ${item.id} fails ${POST_COLLECTION}: ${valid.error.message}`)
  return record
}

/**
 * An image within {@link IMAGE_MAX_BYTES}: as it is when small enough, else halved
 * (nearest-neighbour, paintings are pixel art) until it fits; with its aspect ratio.
 */
async function fitImage(blob: BlobInput): Promise<{ blob: BlobInput; aspectRatio: { width: number; height: number } }> {
  const { width = 1, height = 1 } = await sharp(blob.bytes).metadata()
  let bytes = blob.bytes
  for (let scale = 0.5; bytes.length > IMAGE_MAX_BYTES; scale /= 2) {
    bytes = await sharp(blob.bytes)
      .resize(Math.max(1, Math.round(width * scale)), null, { kernel: 'nearest' })
      .png({ compressionLevel: 9 })
      .toBuffer()
  }
  return { blob: { bytes, mimeType: bytes === blob.bytes ? blob.mimeType : 'image/png' }, aspectRatio: { width, height } }
}

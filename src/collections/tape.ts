import { z } from 'zod'
import type { BlobInput, MirroredCollection, SourceItem, WriterContext } from './types.js'
import { blobMaxSize, blobUrlOf, bucketSchema, byline, codeSchema, ownerFolder, pathSegment, permalink } from './types.js'

const NSID = 'computer.aesthetic.tape'
/** The lexicon's limits on the `video` and `thumbnail` blobs. */
export const VIDEO_MAX_BYTES = blobMaxSize(NSID, 'video')
export const THUMBNAIL_MAX_BYTES = blobMaxSize(NSID, 'thumbnail')

type TapeVideo = Awaited<ReturnType<WriterContext['convertTape']>>

const fields = z.object({
  code: codeSchema,
  slug: z.string().min(1).max(128),
  bucket: bucketSchema,
  // AC's converter also writes `failed` (system/netlify/functions/tape-convert-background.mjs).
  mp4Status: z.enum(['pending', 'processing', 'complete', 'failed']).optional(),
  mp4Url: z.url({ protocol: /^https?$/ }).optional(),
  thumbnailUrl: z.url({ protocol: /^https?$/ }).optional(),
})
type Fields = z.infer<typeof fields>

/** Largest tape ZIP fetched: a 30 s, 60 fps tape of 6×-scaled frames stays well below it. */
const ZIP_MAX_BYTES = 128 * 1024 * 1024

/** Frame ZIP: `{bucket}/{user/}{slug}.zip` (docs/data-model.md). */
function zipUrl(item: SourceItem<Fields>, ctx: WriterContext): string {
  return `${ownerFolder(item.owner, item.fields.bucket, ctx)}/${pathSegment(item.fields.slug)}.zip`
}

/** AC's finished MP4 (`mp4Status: complete` with `mp4Url`), if there is one. */
function finishedMp4(item: SourceItem<Fields>): string | undefined {
  return item.fields.mp4Status === 'complete' ? item.fields.mp4Url : undefined
}

/**
 * One conversion per item per run: the `video` and `thumbnail` makers share it. The entry is
 * dropped once the thumbnail (the last blob) has taken its part, so MP4 bytes are not kept.
 */
const conversions = new WeakMap<SourceItem<Fields>, Promise<TapeVideo>>()

function conversion(item: SourceItem<Fields>, ctx: WriterContext): Promise<TapeVideo> {
  let pending = conversions.get(item)
  if (!pending) {
    pending = convertFromZip(zipUrl(item, ctx), ctx)
    conversions.set(item, pending)
  }
  return pending
}

/** Fetches the frame ZIP (size-capped) and converts it; conversion errors name the ZIP. */
async function convertFromZip(url: string, ctx: WriterContext): Promise<TapeVideo> {
  const zip = await ctx.fetchBytes(url, ZIP_MAX_BYTES)
  try {
    return await ctx.convertTape(zip)
  } catch (err) {
    throw new Error(`tape ZIP ${url}: ${(err as Error).message}`, { cause: err })
  }
}

/** The video blob: AC's MP4 when finished, else one converted from the frame ZIP. */
async function makeVideo(item: SourceItem<Fields>, ctx: WriterContext): Promise<BlobInput> {
  const mp4Url = finishedMp4(item)
  const bytes = mp4Url ? await ctx.fetchBytes(mp4Url, VIDEO_MAX_BYTES) : (await conversion(item, ctx)).mp4
  return { bytes, mimeType: 'video/mp4' }
}

/** The thumbnail blob: AC's `thumbnailUrl` beside a finished MP4, else the conversion's JPEG. */
async function makeThumbnail(item: SourceItem<Fields>, ctx: WriterContext): Promise<BlobInput | null> {
  if (finishedMp4(item)) {
    if (!item.fields.thumbnailUrl) return null
    return { bytes: await ctx.fetchBytes(item.fields.thumbnailUrl, THUMBNAIL_MAX_BYTES), mimeType: 'image/jpeg' }
  }
  try {
    return { bytes: (await conversion(item, ctx)).thumbnail, mimeType: 'image/jpeg' }
  } finally {
    conversions.delete(item)
  }
}

/**
 * `computer.aesthetic.tape`: AC's `tapes`, `!code`, deleted by `nuked: true`. The video is AC's
 * finished MP4, or for a tape without one, converted by the writer from its frame ZIP (`ctx.convertTape`).
 */
export const tape: MirroredCollection<Fields> = {
  kind: 'tape',
  nsid: NSID,
  mongo: 'tapes',
  backrefFields: ['atproto', 'at'],
  codePrefix: '!',
  anonymous: true,
  fieldsSchema: fields,
  isLive: (doc) => doc.nuked !== true,
  async toRecord(item, ctx) {
    const { code, slug } = item.fields
    return {
      $type: this.nsid,
      slug,
      code,
      zipUrl: zipUrl(item, ctx),
      acUrl: permalink(ctx.publicUrl, '!', code),
      when: item.when.toISOString(),
      ref: item.id,
    }
  },
  blobs: [
    { field: 'video', required: true, make: makeVideo },
    { field: 'thumbnail', required: false, make: makeThumbnail },
  ],
  normalize: (record) => record,
  view: (did, r, ctx) => ({
    code: r.code,
    slug: r.slug,
    acUrl: permalink(ctx.publicUrl, '!', r.code),
    video: blobUrlOf(did, r.video, ctx),
    thumb: blobUrlOf(did, r.thumbnail, ctx),
  }),
  synthetic: {
    count: 100,
    record: (n, s) => ({ ...s.base, code: s.code, slug: `tape-${n}`, acUrl: `https://aesthetic.computer/!${s.code}`, video: s.blob('video/mp4', 180_000 + n) }),
  },
  /** `New tape by @h 📼` and the `!code` permalink, with the video (AC's MP4, or converted from the frames). */
  async share(item, ctx) {
    const link = permalink(ctx.publicUrl, '!', item.fields.code)
    return {
      text: `New tape ${byline(ctx.handle)}📼\n\n${link}`,
      link,
      media: { type: 'video', blob: await makeVideo(item, ctx), alt: `Tape ${byline(ctx.handle)}on aesthetic.computer` },
    }
  },
}

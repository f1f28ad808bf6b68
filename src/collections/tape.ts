import { z } from 'zod'
import type { Collection, SourceItem, WriterContext } from './types.js'
import { NotReady, blobUrlOf, bucketSchema, codeSchema, ownerFolder, pathSegment, permalink } from './types.js'

const fields = z.object({
  code: codeSchema,
  slug: z.string().min(1).max(128),
  bucket: bucketSchema,
  mp4Status: z.enum(['pending', 'processing', 'complete']).optional(),
  mp4Url: z.url({ protocol: /^https?$/ }).optional(),
  thumbnailUrl: z.url({ protocol: /^https?$/ }).optional(),
})
type Fields = z.infer<typeof fields>

/** Lexicon maxSize of `video` and `thumbnail` (lexicons/computer/aesthetic/tape.json). */
const VIDEO_MAX_BYTES = 52_428_800
const THUMBNAIL_MAX_BYTES = 1_048_576

/** Frame ZIP: `{bucket}/{user/}{slug}.zip` (ac-data-model.md). */
function zipUrl(item: SourceItem<Fields>, ctx: WriterContext): string {
  return `${ownerFolder(item.owner, item.fields.bucket, ctx)}/${pathSegment(item.fields.slug)}.zip`
}

function finishedMp4(item: SourceItem<Fields>): string {
  const { mp4Status, mp4Url } = item.fields
  if (mp4Status !== 'complete' || !mp4Url) throw new NotReady(`tape has no MP4 yet (mp4Status ${mp4Status ?? 'unset'})`)
  return mp4Url
}

/** `computer.aesthetic.tape`: AC's `tapes`, `!code`, deleted by `nuked: true`; needs its MP4. */
export const tape: Collection<Fields> = {
  kind: 'tape',
  nsid: 'computer.aesthetic.tape',
  mongo: 'tapes',
  codePrefix: '!',
  anonymous: true,
  fieldsSchema: fields,
  isLive: (doc) => doc.nuked !== true,
  async toRecord(item, ctx) {
    finishedMp4(item)
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
    {
      field: 'video',
      required: true,
      async make(item, ctx) {
        return { bytes: await ctx.fetchBytes(finishedMp4(item), VIDEO_MAX_BYTES), mimeType: 'video/mp4' }
      },
    },
    {
      field: 'thumbnail',
      required: false,
      async make(item, ctx) {
        if (!item.fields.thumbnailUrl) return null
        return { bytes: await ctx.fetchBytes(item.fields.thumbnailUrl, THUMBNAIL_MAX_BYTES), mimeType: 'image/jpeg' }
      },
    },
  ],
  normalize: (record) => record,
  view: (did, r, ctx) => ({
    code: r.code,
    slug: r.slug,
    acUrl: permalink(ctx.publicUrl, '!', r.code),
    video: blobUrlOf(did, r.video, ctx),
    thumb: blobUrlOf(did, r.thumbnail, ctx),
  }),
}

import { z } from 'zod'
import type { MirroredCollection, SourceItem, WriterContext } from './types.js'
import { blobMaxSize, blobUrlOf, bucketSchema, byline, codeSchema, ownerFolder, pathSegment, permalink } from './types.js'

const fields = z.object({
  code: codeSchema,
  slug: z.string().min(1).max(128),
  bucket: bucketSchema,
})
type Fields = z.infer<typeof fields>

const NSID = 'computer.aesthetic.painting'
/** The lexicon's limit on the `thumbnail` blob. */
export const THUMBNAIL_MAX_BYTES = blobMaxSize(NSID, 'thumbnail')

/** `imageSlug:recordingSlug` when a recording exists (docs/data-model.md). */
function slugParts(slug: string): { image: string; recording?: string } {
  const [image, recording] = slug.split(':')
  return { image, recording: recording || undefined }
}

/** The folder of the PNG in storage: `{userBucket}/{user}/painting/` or `{artBucket}/`. */
function storageFolder(item: SourceItem<Fields>, ctx: WriterContext): string {
  const folder = ownerFolder(item.owner, item.fields.bucket, ctx)
  return item.owner ? `${folder}/painting` : folder
}

function imageStorageUrl(item: SourceItem<Fields>, ctx: WriterContext): string {
  return `${storageFolder(item, ctx)}/${pathSegment(slugParts(item.fields.slug).image)}.png`
}

async function hasRecording(item: SourceItem<Fields>, ctx: WriterContext): Promise<boolean> {
  const { recording } = slugParts(item.fields.slug)
  return recording !== undefined && (await ctx.exists(`${storageFolder(item, ctx)}/${pathSegment(recording)}.zip`))
}

/** `computer.aesthetic.painting`: AC's `paintings`, `#code`, deleted by `nuked: true`. */
export const painting: MirroredCollection<Fields> = {
  kind: 'painting',
  nsid: NSID,
  mongo: 'paintings',
  backrefFields: ['atproto'],
  codePrefix: '#',
  anonymous: true,
  fieldsSchema: fields,
  isLive: (doc) => doc.nuked !== true,
  async toRecord(item, ctx) {
    const { code, slug } = item.fields
    const media = `${ctx.publicUrl}/media/paintings/${pathSegment(code)}`
    return {
      $type: this.nsid,
      slug,
      code,
      imageUrl: `${media}.png`,
      ...((await hasRecording(item, ctx)) ? { recordingUrl: `${media}.zip` } : {}),
      acUrl: permalink(ctx.publicUrl, '#', code),
      when: item.when.toISOString(),
      ref: item.id,
    }
  },
  blobs: [
    {
      field: 'thumbnail',
      required: false,
      async make(item, ctx) {
        return ctx.thumbnail(await ctx.fetchBytes(imageStorageUrl(item, ctx)), THUMBNAIL_MAX_BYTES)
      },
    },
  ],
  normalize: (record) => record,
  synthetic: {
    count: 5000,
    record: (n, s) => ({
      ...s.base,
      slug: `2025.1.${n % 28}.12.00.00.${n % 1000}`,
      code: s.code,
      imageUrl: `https://aesthetic.computer/media/paintings/${s.code}.png`,
      acUrl: `https://aesthetic.computer/#${s.code}`,
      thumbnail: s.blob('image/png', 7000 + n),
    }),
  },
  /** The image slug: AC's painting URLs leave out a `:recording` part. */
  urlSlug: (record) => slugParts(record.slug).image,
  view: (did, r, ctx) => ({
    code: r.code,
    slug: r.slug,
    acUrl: permalink(ctx.publicUrl, '#', r.code),
    imageUrl: ctx.recordUrl('imageUrl', r.imageUrl),
    recordingUrl: ctx.recordUrl('recordingUrl', r.recordingUrl),
    thumb: blobUrlOf(did, r.thumbnail, ctx),
  }),
  /** As AC's share script: `New painting by @h 🎨✨` and `painting~@h/slug` (the `#code` permalink for a guest's), the PNG with alt text. */
  async share(item, ctx) {
    const link = ctx.handle
      ? `${ctx.publicUrl}/painting~@${ctx.handle}/${pathSegment(slugParts(item.fields.slug).image)}`
      : permalink(ctx.publicUrl, '#', item.fields.code)
    const png = await ctx.fetchBytes(imageStorageUrl(item, ctx))
    return {
      text: `New painting ${byline(ctx.handle)}🎨✨\n\n${link}`,
      link,
      media: { type: 'image', blob: { bytes: png, mimeType: 'image/png' }, alt: `Painting ${byline(ctx.handle)}on aesthetic.computer` },
    }
  },
}

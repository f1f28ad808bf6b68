import { z } from 'zod'
import type { MirroredCollection } from './types.js'
import { byline, codeSchema, permalink } from './types.js'

const fields = z.object({
  code: codeSchema,
  source: z
    .string()
    .min(1, 'is empty')
    .refine((s) => s.length <= 50_000, 'is longer than 50,000 characters'),
})

/** `computer.aesthetic.kidlisp`: AC's `kidlisp`, `$code` (stored without `$`); `nuked: true` tolerated. */
export const kidlisp: MirroredCollection<z.infer<typeof fields>> = {
  kind: 'kidlisp',
  nsid: 'computer.aesthetic.kidlisp',
  mongo: 'kidlisp',
  backrefFields: ['atproto'],
  codePrefix: '$',
  anonymous: true,
  fieldsSchema: fields,
  isLive: (doc) => doc.nuked !== true,
  async toRecord(item, ctx) {
    const { code, source } = item.fields
    return {
      $type: this.nsid,
      source,
      code,
      acUrl: permalink(ctx.publicUrl, '$', code),
      when: item.when.toISOString(),
      ref: item.id,
    }
  },
  blobs: [],
  normalize: (record) => record,
  view: (_did, r, ctx) => ({ code: r.code, source: r.source, acUrl: permalink(ctx.publicUrl, '$', r.code) }),
  longText: 'source',
  synthetic: {
    count: 16500,
    record: (n, s) => ({
      ...s.base,
      code: s.code,
      source: `(wipe ${['red', 'blue', 'navy'][n % 3]})\n${'(ink rainbow) (line 0 0 w h) '.repeat(1 + Math.floor(s.random() * 60))}`,
      acUrl: `https://aesthetic.computer/$${s.code}`,
    }),
  },
  /** Text and link: `KidLisp by @h 🧩`, the start of the source, the `$code` permalink. */
  async share(item, ctx) {
    const link = permalink(ctx.publicUrl, '$', item.fields.code)
    return { text: `KidLisp ${byline(ctx.handle)}🧩\n\n${excerpt(item.fields.source)}\n\n${link}`, link }
  },
}

/** Longest start of a source quoted in a share, in code points (the post's 300 graphemes hold it, the byline and the link). */
const EXCERPT_MAX = 140

/** The first lines of a KidLisp source, trimmed, cut at {@link EXCERPT_MAX} with `…`. */
function excerpt(source: string): string {
  const lines = source
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('\n')
  const chars = [...lines]
  return chars.length > EXCERPT_MAX ? `${chars.slice(0, EXCERPT_MAX - 1).join('')}…` : lines
}

import { z } from 'zod'
import type { Collection } from './types.js'
import { codeSchema, permalink } from './types.js'

const fields = z.object({
  code: codeSchema,
  source: z
    .string()
    .min(1, 'is empty')
    .refine((s) => s.length <= 50_000, 'is longer than 50,000 characters'),
})

/** `computer.aesthetic.kidlisp`: AC's `kidlisp`, `$code` (stored without `$`); `nuked: true` tolerated. */
export const kidlisp: Collection<z.infer<typeof fields>> = {
  kind: 'kidlisp',
  nsid: 'computer.aesthetic.kidlisp',
  mongo: 'kidlisp',
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
}

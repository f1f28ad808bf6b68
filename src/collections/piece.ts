import { z } from 'zod'
import type { MirroredCollection } from './types.js'

const fields = z.object({ slug: z.string().min(1).max(100) })

/** `computer.aesthetic.piece`: AC's `pieces`, no code in the record, deleted by `nuked: true`. */
export const piece: MirroredCollection<z.infer<typeof fields>> = {
  kind: 'piece',
  nsid: 'computer.aesthetic.piece',
  mongo: 'pieces',
  backrefFields: ['atproto'],
  anonymous: true,
  fieldsSchema: fields,
  isLive: (doc) => doc.nuked !== true,
  async toRecord(item) {
    return { $type: this.nsid, slug: item.fields.slug, when: item.when.toISOString(), ref: item.id }
  },
  blobs: [],
  normalize: (record) => record,
  view: (_did, r) => ({ slug: r.slug }),
  synthetic: { count: 300, record: (n, s) => ({ ...s.base, slug: `piece-${n}` }) },
}

import { z } from 'zod'
import type { MirroredCollection } from './types.js'

const fields = z.object({
  mood: z
    .string()
    .min(1, 'is empty')
    .refine((s) => [...new Intl.Segmenter().segment(s)].length <= 5000, 'is longer than 5,000 characters'),
})

/** `computer.aesthetic.mood`: AC's `moods`, never anonymous, deleted by `deleted: true`. */
export const mood: MirroredCollection<z.infer<typeof fields>> = {
  kind: 'mood',
  nsid: 'computer.aesthetic.mood',
  mongo: 'moods',
  backrefFields: ['atproto'],
  anonymous: false,
  fieldsSchema: fields,
  isLive: (doc) => doc.deleted !== true,
  async toRecord(item) {
    return { $type: this.nsid, mood: item.fields.mood, when: item.when.toISOString(), ref: item.id }
  },
  blobs: [],
  /** AC's bulk sync wrote `text` for `mood`; older moods carry `mongoId` for `ref`. */
  normalize(record) {
    const { text, mongoId, ...rest } = record
    return {
      ...rest,
      mood: rest.mood ?? text,
      ref: rest.ref ?? mongoId,
    }
  },
  view: (_did, r) => ({ mood: r.mood }),
  synthetic: { count: 3200, record: (n, s) => ({ ...s.base, mood: `feeling ${['calm', 'bright', 'pixelated', 'sleepy', 'loud'][n % 5]} ${n}` }) },
  longText: 'mood',
}

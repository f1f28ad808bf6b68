import { createHash } from 'node:crypto'
import type { LexiconDoc } from '@atproto/lexicon'
import { collections } from '../collections/index.js'
import { schemas } from '../lexicon/lexicons.js'

/**
 * SHA-256 (hex) of the record lexicons of AC's collections, as built into this version. Stored
 * with each quarantined record: when it differs at start-up, the lexicons changed and the
 * quarantine is re-checked (src/ingest/quarantine.ts).
 */
export function lexiconHash(docs: LexiconDoc[] = schemas as LexiconDoc[]): string {
  const nsids = new Set(collections.map((c) => c.nsid))
  const records = docs.filter((d) => nsids.has(d.id)).sort((a, b) => a.id.localeCompare(b.id))
  return createHash('sha256').update(JSON.stringify(records)).digest('hex')
}

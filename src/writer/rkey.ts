import { createHash } from 'node:crypto'
import { TID } from '@atproto/common-web'

/**
 * The deterministic record key of a mirrored item (docs/architecture.md): a TID whose timestamp is the
 * item's `when` in microseconds (milliseconds × 1000 plus three digits from a SHA-256 of the
 * ObjectId) and whose 10-bit clock id comes from the same hash. Re-running after a crash
 * therefore writes to the same key, and never duplicates.
 */
export function deterministicRkey(id: string, when: Date): string {
  const hash = createHash('sha256').update(id).digest()
  const micros = when.getTime() * 1000 + (hash.readUInt16BE(0) % 1000)
  const clockId = hash.readUInt16BE(2) % 1024
  return TID.fromTime(micros, clockId).toString()
}

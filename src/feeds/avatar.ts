import { createHash } from 'node:crypto'
import sharp from 'sharp'
import type { FeedDefinition } from './definitions.js'

/** Pattern cells per side, and the avatar's side in pixels. */
const CELLS = 8
const SIZE = 256

/**
 * A feed's avatar: an 8×8 left-right symmetric pixel pattern (drawn from a SHA-256 of the feed's
 * rkey) in its two colours, scaled to 256×256 nearest-neighbour like AC's pixel art, as PNG.
 * The same definition always gives the same bytes, so `feeds publish` recognises an avatar already
 * uploaded by its CID.
 */
export async function feedAvatar(def: FeedDefinition): Promise<Buffer> {
  const bits = createHash('sha256').update(def.rkey).digest()
  const [on, off] = def.colors.map(rgb)
  const raw = Buffer.alloc(CELLS * CELLS * 3)
  for (let y = 0; y < CELLS; y++) {
    for (let x = 0; x < CELLS / 2; x++) {
      const cell = y * (CELLS / 2) + x
      const color = (bits[cell >> 3] >> (cell & 7)) & 1 ? on : off
      for (const column of [x, CELLS - 1 - x]) raw.set(color, (y * CELLS + column) * 3)
    }
  }
  return sharp(raw, { raw: { width: CELLS, height: CELLS, channels: 3 } })
    .resize(SIZE, SIZE, { kernel: 'nearest' })
    .png({ compressionLevel: 9 })
    .toBuffer()
}

/** `#rrggbb` → [r, g, b]. */
function rgb(hex: string): number[] {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16))
}

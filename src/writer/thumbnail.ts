import sharp from 'sharp'
import type { BlobInput } from '../collections/index.js'

/** Thumbnail box from AC's thumbnails: 512×512, `contain` on black (docs/data-model.md). */
const SIZE = 512
/** Inputs above this many pixels are refused (decompression bombs); AC paintings are ≤ 2048². */
const MAX_INPUT_PIXELS = 8192 * 8192

/**
 * A 512×512 thumbnail of a painting: nearest-neighbour when the source is smaller than 512 on
 * a side (pixel art stays crisp), lanczos3 when larger; PNG, or JPEG when the PNG would exceed
 * `maxBytes` (the lexicon's maxSize). Never returns the full image.
 * @throws Error when the input is not a decodable image, exceeds the pixel cap, or no encoding fits.
 */
export async function makeThumbnail(image: Uint8Array, maxBytes: number): Promise<BlobInput> {
  const source = sharp(image, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' })
  const { width, height } = await source.metadata()
  if (!width || !height) throw new Error('image has no dimensions')
  const kernel = width < SIZE && height < SIZE ? 'nearest' : 'lanczos3'
  const resized = source.resize(SIZE, SIZE, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel }).flatten({ background: '#000000' })
  const png = await resized.clone().png({ compressionLevel: 6 }).toBuffer()
  if (png.length <= maxBytes) return { bytes: png, mimeType: 'image/png' }
  const jpeg = await resized.clone().jpeg({ quality: 85 }).toBuffer()
  if (jpeg.length <= maxBytes) return { bytes: jpeg, mimeType: 'image/jpeg' }
  throw new Error(`thumbnail exceeds ${maxBytes} bytes even as JPEG`)
}

/**
 * The tasks a media pool worker runs (see ./media-pool.ts): the writer's thumbnails and tape
 * conversions, by the same functions as on the main thread, so the bytes are the same.
 */
import type { BlobInput } from '../collections/index.js'
import { convertTape, type TapeVideo } from './tape-video.js'
import { makeThumbnail } from './thumbnail.js'

/** {@link makeThumbnail} of `image`. */
export function thumbnail({ image, maxBytes }: { image: Uint8Array; maxBytes: number }): Promise<BlobInput> {
  return makeThumbnail(image, maxBytes)
}

/** {@link convertTape} of `zip`, with its default options. */
export function tape({ zip }: { zip: Uint8Array }): Promise<TapeVideo> {
  return convertTape(zip)
}

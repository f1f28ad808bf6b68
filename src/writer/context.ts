import PQueue from 'p-queue'
import type { WriterContext } from '../collections/index.js'
import type { Config } from '../config.js'
import { createMediaClient } from './media.js'
import { sharedMediaPool } from './media-pool.js'

/** ffmpeg uses every core: one tape conversion at a time (per process) keeps the writer's other work moving. */
const converter = new PQueue({ concurrency: 1 })

/**
 * The writer's view of AC's storage and site, from configuration (AC_STORAGE_URL, AC_PUBLIC_URL,
 * MEDIA_*); thumbnails and tape conversions run on the process's media pool (WRITER_MEDIA_THREADS).
 */
export function createWriterContext(
  cfg: Pick<Config, 'AC_STORAGE_URL' | 'AC_PUBLIC_URL' | 'MEDIA_MAX_BYTES' | 'MEDIA_TIMEOUT_MS' | 'WRITER_MEDIA_THREADS'>,
): WriterContext {
  const media = createMediaClient({ storageTemplate: cfg.AC_STORAGE_URL, maxBytes: cfg.MEDIA_MAX_BYTES, timeoutMs: cfg.MEDIA_TIMEOUT_MS })
  const pool = sharedMediaPool(cfg.WRITER_MEDIA_THREADS)
  return {
    publicUrl: cfg.AC_PUBLIC_URL.replace(/\/+$/, ''),
    bucketUrl: media.bucketUrl,
    exists: media.exists,
    fetchBytes: media.fetchBytes,
    thumbnail: pool.thumbnail,
    convertTape: (zip) => converter.add(() => pool.convertTape(zip)) as ReturnType<WriterContext['convertTape']>,
  }
}

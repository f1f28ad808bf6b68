/**
 * `npm run bench:thumbnails`: thumbnails/s for AC-sized pixel art. The paintings are drawn as the
 * sample data draws them (src/dev/sample.ts: 32 to 2048 px a side, most at most 256 px, 3 % from
 * 1024 px up; blocky pixel art with 2-8 colours), and each becomes a 512×512 thumbnail by AC's
 * rule (src/writer/thumbnail.ts: contain on black, nearest-neighbour below 512 px, lanczos3
 * above). Both designs run in the same process, one after the other, on the same images:
 *   previous  makeThumbnail on the main thread, as many at once as the writer asked for (16)
 *   pool      the writer's thumbnail pool (src/writer/media-pool.ts)
 * and every thumbnail is checked to be byte-identical between them.
 *   THUMBNAILS=N            thumbnails per design (default 1200; distinct images: 400)
 *   WRITER_MEDIA_THREADS=N  the pool's threads (default: the machine's cores)
 * Last line: `BENCH_RESULT {"thumbnailsPerS", "previousThumbnailsPerS", …}`.
 */
import os from 'node:os'
import PQueue from 'p-queue'
import { THUMBNAIL_MAX_BYTES } from '../src/collections/painting.js'
import { loadConfig } from '../src/config.js'
import { samplePaintingPngs } from '../src/dev/sample.js'
import { createMediaPool } from '../src/writer/media-pool.js'
import { makeThumbnail } from '../src/writer/thumbnail.js'

const thumbnails = Number(process.env.THUMBNAILS ?? 1200)
const DISTINCT = 400
/** What the writer had in flight at once before the pool: 4 repos × 4 records built at once. */
const PREVIOUS_CONCURRENCY = 16

interface Run {
  design: string
  thumbnails: number
  seconds: number
  cpuSeconds: number
  load1: number
  bytes: Uint8Array[]
}

async function timed(design: string, images: Uint8Array[], make: (png: Uint8Array) => Promise<Uint8Array>, concurrency: number): Promise<Run> {
  const queue = new PQueue({ concurrency })
  const bytes: Uint8Array[] = new Array(thumbnails)
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  for (let i = 0; i < thumbnails; i++) void queue.add(async () => (bytes[i] = await make(images[i % images.length])))
  await queue.onIdle()
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpu0)
  return { design, thumbnails, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, load1: os.loadavg()[0], bytes }
}

async function main() {
  const painted = await samplePaintingPngs(DISTINCT)
  const images = painted.map((p) => p.png)
  const pool = createMediaPool(loadConfig(process.env).WRITER_MEDIA_THREADS)
  try {
    // One pass of each first: the pool's workers start and load sharp, the libvips caches warm.
    await Promise.all(images.slice(0, 8).flatMap((png) => [makeThumbnail(png, THUMBNAIL_MAX_BYTES), pool.thumbnail(png, THUMBNAIL_MAX_BYTES)]))
    const previous = await timed(
      'previous: main thread, 16 at once',
      images,
      async (png) => (await makeThumbnail(png, THUMBNAIL_MAX_BYTES)).bytes,
      PREVIOUS_CONCURRENCY,
    )
    const pooled = await timed(
      `pool: ${pool.threads} worker threads`,
      images,
      async (png) => (await pool.thumbnail(png, THUMBNAIL_MAX_BYTES)).bytes,
      PREVIOUS_CONCURRENCY,
    )
    const differing = previous.bytes.filter((b, i) => !Buffer.from(b).equals(pooled.bytes[i])).length
    if (differing) throw new Error(`${differing} thumbnails differ between the designs`)

    const side = (p: { w: number; h: number }) => Math.max(p.w, p.h)
    const mix = {
      'nearest (< 512 px)': painted.filter((p) => p.w < 512 && p.h < 512).length,
      'lanczos3, up to 1024 px': painted.filter((p) => !(p.w < 512 && p.h < 512) && side(p) <= 1024).length,
      'lanczos3, 1025-2048 px': painted.filter((p) => side(p) > 1024).length,
    }
    const cpus = os.cpus()
    console.log(
      `\nthumbnail benchmark: ${thumbnails} thumbnails per design from ${DISTINCT} paintings (${Object.entries(mix)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')}); all byte-identical between designs`,
    )
    console.log(
      `machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, node ${process.version}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 'unset (4)'}`,
    )
    console.table(
      [previous, pooled].map((r) => ({
        design: r.design,
        thumbnails: r.thumbnails,
        seconds: +r.seconds.toFixed(2),
        'thumbnails/s': +(r.thumbnails / r.seconds).toFixed(1),
        'cpu ms each (this process)': +((1000 * r.cpuSeconds) / r.thumbnails).toFixed(1),
        load1: +r.load1.toFixed(2),
      })),
    )
    const rate = pooled.thumbnails / pooled.seconds
    const before = previous.thumbnails / previous.seconds
    console.log(`pool: ${(rate / before).toFixed(2)}× the previous design (target ≥ 150 thumbnails/s)`)
    console.log(
      'BENCH_RESULT ' +
        JSON.stringify({ thumbnailsPerS: +rate.toFixed(1), previousThumbnailsPerS: +before.toFixed(1), thumbnails, load1: +os.loadavg()[0].toFixed(2) }),
    )
  } finally {
    await pool.close()
  }
}

await main()

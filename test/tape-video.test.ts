import { mkdtemp, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_FPS, MAX_SECONDS, TapeError, convertTape, type ConvertOptions, type TapeVideo } from '../src/writer/tape-video.js'
import { ZipError } from '../src/writer/zip.js'
import { ffprobe, framePng, makeZip, rate, sineWav, tapeZip, topBoxes, type TapeSpec } from './support/tape-fixtures.js'

/** Tape ZIP → MP4 with real ffmpeg, checked with ffprobe (issue 4, Tapes). */
describe('convertTape', () => {
  let tmp: string
  const opts = (): ConvertOptions => ({ tmpDir: tmp })

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tape-video-test-'))
  })
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true })
  })

  /** Converts, then checks what every good tape must be: H.264 yuv420p, even size, faststart, ≤30 s, JPEG thumbnail. */
  async function convertAndProbe(spec: TapeSpec) {
    const video = await convertTape(await tapeZip(spec), opts())
    const probe = await ffprobe(video.mp4)
    const v = probe.streams.find((s) => s.codec_type === 'video')!
    const audio = probe.streams.filter((s) => s.codec_type === 'audio')
    expect(v).toMatchObject({ codec_name: 'h264', pix_fmt: 'yuv420p', width: video.width, height: video.height })
    expect(v.width! % 2).toBe(0)
    expect(v.height! % 2).toBe(0)
    expect(Number(v.nb_read_frames)).toBe(video.frames)
    expect(Number(probe.format.duration)).toBeLessThanOrEqual(MAX_SECONDS + 0.1)
    expect(Number(probe.format.duration)).toBeCloseTo(video.durationSeconds, 1)
    expect(audio.map((a) => a.codec_name)).toEqual(video.hasAudio ? ['aac'] : [])
    const boxes = topBoxes(video.mp4)
    expect(boxes.indexOf('moov')).toBeLessThan(boxes.indexOf('mdat'))
    const thumb = await sharp(video.thumbnail).metadata()
    expect([thumb.format, thumb.width, thumb.height]).toEqual(['jpeg', 512, 512])
    expect(await readdir(tmp)).toEqual([]) // the work folder is gone
    return { video, probe, v }
  }

  it('converts a tape without soundtrack at 1000 / mean frame duration', async () => {
    const { video, v } = await convertAndProbe({ width: 144, height: 96, frames: 8, timing: [100, 150, 100, 150, 100, 150, 100, 150] })
    expect(video).toMatchObject({ fps: 8, width: 144, height: 96, frames: 8, durationSeconds: 1, hasAudio: false })
    expect(rate(v.avg_frame_rate)).toBeCloseTo(8, 3)
  })

  it('converts a tape with soundtrack at frames / soundtrack duration, with AAC audio', async () => {
    const { video, v } = await convertAndProbe({ width: 96, height: 96, frames: 10, soundSeconds: 2.5 })
    expect(video).toMatchObject({ fps: 4, frames: 10, durationSeconds: 2.5, hasAudio: true })
    expect(rate(v.avg_frame_rate)).toBeCloseTo(4, 3)
  })

  it('rounds odd dimensions down to even with nearest-neighbour scaling', async () => {
    const { video } = await convertAndProbe({ width: 17, height: 9, frames: 6 })
    expect([video.width, video.height, video.frames, video.fps]).toEqual([16, 8, 6, 10])
  })

  it('converts a single frame', async () => {
    const { video } = await convertAndProbe({ width: 102, height: 54, frames: 1, timing: [250] })
    expect(video).toMatchObject({ frames: 1, fps: 4, durationSeconds: 0.25 })
  })

  it('uses 60 fps when timing.json is missing, empty or invalid', async () => {
    for (const timing of [null, '[]', 'not json', '[{"frame":0}]', '[{"duration":0},{"duration":0}]']) {
      const { video, v } = await convertAndProbe({ width: 32, height: 32, frames: 12, timing })
      expect(video.fps, String(timing)).toBe(DEFAULT_FPS)
      expect(rate(v.avg_frame_rate)).toBeCloseTo(DEFAULT_FPS, 1)
      expect(video.durationSeconds).toBeCloseTo(0.2, 5)
    }
  })

  it('caps a long tape at 30 s', async () => {
    const { video } = await convertAndProbe({ width: 16, height: 16, frames: 40, timing: Array(40).fill(1000) })
    expect(video).toMatchObject({ fps: 1, frames: 30, durationSeconds: 30 })
  })

  describe('refuses bad ZIPs with clear errors', () => {
    /** Asserts the conversion fails with `type` and a message matching `message`, leaving no work folder behind. */
    async function refused(zip: Uint8Array, type: typeof ZipError | typeof TapeError, message: RegExp, extra: ConvertOptions = {}) {
      const err = await convertTape(zip, { ...opts(), ...extra }).then(
        () => null,
        (e: Error) => e,
      )
      expect(err).toBeInstanceOf(type)
      expect(err!.message).toMatch(message)
      expect(await readdir(tmp)).toEqual([])
      return err!
    }
    const frame = () => framePng(12, 12, 0)

    it('a corrupt or truncated ZIP', async () => {
      await refused(Buffer.from('this is not a zip file at all'), ZipError, /^not a valid ZIP: /)
      const good = await tapeZip({ width: 12, height: 12, frames: 3 })
      await refused(good.subarray(0, good.length - 30), ZipError, /^not a valid ZIP: /)
      const flipped = Buffer.from(good)
      flipped.fill(0xff, 40, 200) // inside the first frame's compressed data
      await refused(flipped, ZipError, /^ZIP entry "frame-00000.png" is corrupt: /)
    })

    it('a ZIP bomb: a high compression ratio, caught while inflating', async () => {
      const zeros = Buffer.alloc(16 * 1024 * 1024)
      const bomb = makeZip([
        { name: 'frame-00000.png', data: await frame() },
        { name: 'soundtrack.wav', data: zeros },
      ])
      expect(bomb.length).toBeLessThan(64 * 1024) // ~16 MB from under 64 KB
      await refused(bomb, ZipError, /^ZIP entry "soundtrack.wav": compression ratio over 200:1 .* refused as a ZIP bomb$/)
    })

    it('a ZIP bomb: a huge declared size, refused from the header', async () => {
      const zip = makeZip([{ name: 'soundtrack.wav', data: Buffer.alloc(1000), declaredSize: 4_000_000_000 }])
      await refused(zip, ZipError, /^ZIP entry "soundtrack.wav": declares 4000000000 bytes, more than the per-entry limit of 67108864$/)
    })

    it('a ZIP bomb: a header that understates the size, caught while inflating', async () => {
      const zip = makeZip([{ name: 'soundtrack.wav', data: Buffer.alloc(2 * 1024 * 1024, 1), declaredSize: 100 }])
      await refused(zip, ZipError, /^ZIP entry "soundtrack.wav" is corrupt: too many bytes in the stream. expected 100/)
    })

    it('more bytes in all than the total limit, and more entries than allowed', async () => {
      const zip = await tapeZip({ width: 64, height: 64, frames: 4 })
      await refused(zip, ZipError, /the archive inflates to more than the total limit of 500 bytes/, { limits: { maxTotalBytes: 500 } })
      await refused(zip, ZipError, /^ZIP has 6 entries, more than the limit of 5$/, { limits: { maxEntries: 5 } })
    })

    it('path traversal, absolute paths, backslashes and folders', async () => {
      const cases: Array<[string, RegExp]> = [
        ['../evil.png', /^ZIP entry "..\/evil.png": path traversal \(..\) is not allowed$/],
        ['frames/../../evil.png', /path traversal/],
        ['/etc/evil.png', /^ZIP entry "\/etc\/evil.png": absolute paths are not allowed$/],
        ['C:/evil.png', /absolute paths are not allowed/],
        ['..\\evil.png', /backslashes are not allowed/],
        ['frames/frame-00000.png', /folders are not allowed; entries must be flat/],
      ]
      for (const [name, message] of cases) {
        await refused(
          makeZip([
            { name: 'frame-00000.png', data: await frame() },
            { name, data: await frame() },
          ]),
          ZipError,
          message,
        )
      }
    })

    it('unexpected and duplicate files', async () => {
      for (const name of ['notes.txt', 'frame-1.png', 'frame-00000.PNG', 'evil.sh', '.hidden']) {
        await refused(
          await tapeZip({ width: 12, height: 12, frames: 2, extra: [[name, Buffer.from('x')]] }),
          ZipError,
          new RegExp(
            `^ZIP entry "${name.replace(/\./g, '\\.')}": unexpected file; only frame-NNNNN.png, timing.json, metadata.json and soundtrack.wav are allowed$`,
          ),
        )
      }
      await refused(
        makeZip([
          { name: 'frame-00000.png', data: await frame() },
          { name: 'frame-00000.png', data: await frame() },
        ]),
        ZipError,
        /"frame-00000.png": appears twice/,
      )
    })

    it('tapes whose content is unusable', async () => {
      await refused(makeZip([{ name: 'timing.json', data: Buffer.from('[]') }]), TapeError, /^tape has no frames/)
      await refused(
        makeZip([
          { name: 'frame-00000.png', data: await frame() },
          { name: 'frame-00002.png', data: await frame() },
        ]),
        TapeError,
        /frame-00001.png is missing/,
      )
      await refused(
        makeZip([
          { name: 'frame-00000.png', data: await frame() },
          { name: 'frame-00001.png', data: await framePng(14, 12, 1) },
        ]),
        TapeError,
        /frame-00001.png is 14×12 but frame-00000.png is 12×12; all frames must be the same size/,
      )
      await refused(makeZip([{ name: 'frame-00000.png', data: Buffer.from('GIF89a not a png at all, really') }]), TapeError, /^frame-00000.png is not a PNG$/)
      await refused(makeZip([{ name: 'frame-00000.png', data: await framePng(1, 12, 0) }]), TapeError, /frames must be at least 2×2/)
      await refused(makeZip([{ name: 'frame-00000.png', data: await framePng(4100, 2, 0) }]), TapeError, /at most 4096 pixels on a side/)
      await refused(
        makeZip([
          { name: 'frame-00000.png', data: await frame() },
          { name: 'soundtrack.wav', data: Buffer.from('RIFF....WAVE') },
        ]),
        TapeError,
        /^soundtrack.wav: no data chunk$/,
      )
      await refused(
        makeZip([
          { name: 'frame-00000.png', data: await frame() },
          { name: 'soundtrack.wav', data: sineWav(1).subarray(0, 44) },
        ]),
        TapeError,
        /^soundtrack.wav: the data chunk is empty$/,
      )
    })

    it('an MP4 over the size limit, and an ffmpeg run over its time limit', async () => {
      const zip = await tapeZip({ width: 48, height: 48, frames: 4 })
      await refused(zip, TapeError, /^MP4 is \d+ bytes, over the 1000-byte limit for a tape video$/, { maxMp4Bytes: 1000 })
      await refused(zip, TapeError, /^ffmpeg timed out after 1 ms$/, { timeoutMs: 1 })
    })
  })

  it('converts a typical tape (AC-sized frames, 3 s, sound) in reasonable time', async () => {
    const zip = await tapeZip({ width: 32 * 6, height: 18 * 6, frames: 90, timing: Array(90).fill(33), soundSeconds: 3 })
    const started = performance.now()
    const video: TapeVideo = await convertTape(zip, opts())
    const ms = performance.now() - started
    console.log(
      `typical tape: ${zip.length} B ZIP, 90 frames ${video.width}×${video.height}, 3 s with sound → ${video.mp4.length} B MP4 in ${Math.round(ms)} ms`,
    )
    expect(video).toMatchObject({ fps: 30, frames: 90, hasAudio: true })
    expect(ms).toBeLessThan(20_000)
  })
})

import { spawn } from 'node:child_process'
import { mkdtemp, open, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import sharp from 'sharp'
import { z } from 'zod'
import { THUMBNAIL_MAX_BYTES, VIDEO_MAX_BYTES } from '../collections/tape.js'
import { makeThumbnail } from './thumbnail.js'
import { extractZip, type ZipLimits } from './zip.js'

/**
 * Tape ZIP → MP4, as AC's converter does it (docs/data-model.md, "Media"; AC's
 * `system/backend/tape-to-mp4.mjs`). A tape ZIP holds `frame-00000.png`…, `timing.json`
 * (`[{ frame, filename, duration (ms), timestamp }]`), `metadata.json` and maybe `soundtrack.wav`.
 */

/** Raised when a tape cannot become a video; the message says which file or rule failed. */
export class TapeError extends Error {}

/** A converted tape. Sizes in bytes, dimensions in pixels. */
export interface TapeVideo {
  /** H.264 yuv420p MP4 (AAC 128k when `hasAudio`), moov atom first (`+faststart`). */
  mp4: Uint8Array
  /** JPEG, 512×512 `contain` on black, of the middle frame. */
  thumbnail: Uint8Array
  /** Frames per second of the video (not rounded). */
  fps: number
  /** Width and height of the video: the frames' rounded down to even numbers. */
  width: number
  height: number
  /** Frames in the video (after the 30 s cap). */
  frames: number
  durationSeconds: number
  hasAudio: boolean
}

export interface ConvertOptions {
  /** Wall-clock limit for the ffmpeg run; it is killed after this. Default: {@link ffmpegTimeoutMs}. */
  timeoutMs?: number
  /** Largest MP4 accepted. Default: the lexicon's `video` maxSize, 52,428,800 bytes. */
  maxMp4Bytes?: number
  /** ZIP limits overriding {@link TAPE_ZIP_LIMITS}. */
  limits?: Partial<ZipLimits>
  /** Where the temporary work folder is made (and removed). Default: the OS temp dir. */
  tmpDir?: string
}

/** AC's converter only handles tapes up to 30 s (`MAX_DURATION_SECONDS`); longer ones are cut here. */
export const MAX_SECONDS = 30
/** AC's frame rate when timing.json is missing or unusable. */
export const DEFAULT_FPS = 60

/**
 * Limits on a tape ZIP. A 30 s tape at 60 fps has 1,800 frames; 4,000 entries leave room for
 * longer tapes (only their first 30 s are used). Frames are PNGs of 6×-scaled pixel art (tens
 * of KB each); 64 MiB per entry fits a 6-minute CD-quality soundtrack.wav; 512 MiB in all
 * bounds the temp dir. PNG does not deflate further, JSON and audio do; a ratio over 200:1 on
 * an entry past 1 MiB is a bomb (deflate tops out near 1,030:1 on constant data).
 */
export const TAPE_ZIP_LIMITS: ZipLimits = {
  maxEntries: 4_000,
  maxEntryBytes: 64 * 1024 * 1024,
  maxTotalBytes: 512 * 1024 * 1024,
  maxRatio: 200,
  ratioFloorBytes: 1024 * 1024,
}

/** Frames larger than this on a side are refused: H.264 level 5.1/5.2 (common players) stops at 4096. */
export const MAX_FRAME_SIDE = 4096

const TAPE_FILES = /^(frame-\d{5}\.png|timing\.json|metadata\.json|soundtrack\.wav)$/
const TAPE_FILES_LABEL = 'frame-NNNNN.png, timing.json, metadata.json and soundtrack.wav'

/**
 * Converts a tape ZIP into an MP4 and a JPEG thumbnail with ffmpeg, as AC's converter does:
 * - frame rate = frames / soundtrack duration (read from the WAV header) when there is a
 *   soundtrack, else 1000 / mean frame `duration` of timing.json, else 60 when timing.json is
 *   missing, empty or invalid. AC rounds the rate to an integer; this does not, so the video
 *   keeps pace with the soundtrack (and a 1-frame, 2-second tape does not round to 0 fps);
 * - nearest-neighbour scaling to even width and height; libx264, yuv420p; AAC 128k when there
 *   is sound; `-movflags +faststart`; at most 30 s;
 * - thumbnail: the middle frame, 512×512 contain on black (the painting thumbnail rule), JPEG.
 * Works in a fresh temp dir that is always removed; ffmpeg is spawned without a shell and
 * killed after `timeoutMs`.
 * @throws ZipError (from ./zip.ts) when the ZIP is corrupt or unsafe, TapeError when its content
 *   is not a usable tape (no frames, gaps in numbering, unequal or oversized frames, a bad WAV),
 *   ffmpeg fails or times out (its stderr is included), or the MP4 is over `maxMp4Bytes`.
 */
export async function convertTape(zip: Uint8Array, opts: ConvertOptions = {}): Promise<TapeVideo> {
  const dir = await mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), 'ac-tape-video-'))
  try {
    const names = await extractZip(zip, dir, { limits: { ...TAPE_ZIP_LIMITS, ...opts.limits }, allowed: TAPE_FILES, allowedLabel: TAPE_FILES_LABEL })
    const frames = frameNames(names)
    const size = await frameSize(dir, frames)
    const audioSeconds = names.includes('soundtrack.wav') ? wavSeconds(await readFile(path.join(dir, 'soundtrack.wav'))) : null
    const fps = audioSeconds === null ? timingFps(await readOptional(path.join(dir, 'timing.json'))) : frames.length / audioSeconds
    const hasAudio = audioSeconds !== null
    const out = path.join(dir, 'tape.mp4')
    const encoded = Math.min(frames.length, Math.ceil(MAX_SECONDS * fps - 1e-9))
    await runFfmpeg(ffmpegArgs(dir, fps, hasAudio, out), opts.timeoutMs ?? ffmpegTimeoutMs(encoded * size.width * size.height))
    const mp4 = await readFile(out)
    const maxMp4 = opts.maxMp4Bytes ?? VIDEO_MAX_BYTES
    if (mp4.length > maxMp4) throw new TapeError(`MP4 is ${mp4.length} bytes, over the ${maxMp4}-byte limit for a tape video`)
    const middle = await readFile(path.join(dir, frames[Math.floor(frames.length / 2)]))
    const videoSeconds = Math.min(frames.length / fps, MAX_SECONDS)
    return {
      mp4,
      thumbnail: await jpegThumbnail(middle),
      fps,
      width: even(size.width),
      height: even(size.height),
      frames: encoded,
      durationSeconds: Math.min(Math.max(videoSeconds, audioSeconds ?? 0), MAX_SECONDS),
      hasAudio,
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The frame files, numbered 00000 upwards without gaps (ffmpeg's `frame-%05d.png` stops at a gap). */
function frameNames(names: string[]): string[] {
  const frames = names.filter((n) => n.startsWith('frame-')).sort()
  if (frames.length === 0) throw new TapeError('tape has no frames (frame-00000.png…)')
  frames.forEach((name, i) => {
    const want = `frame-${String(i).padStart(5, '0')}.png`
    if (name !== want) throw new TapeError(`frames must be numbered from frame-00000.png without gaps: ${want} is missing`)
  })
  return frames
}

/** Width and height shared by every frame, read from each PNG's IHDR chunk. */
async function frameSize(dir: string, frames: string[]): Promise<{ width: number; height: number }> {
  let first: { width: number; height: number } | undefined
  for (const name of frames) {
    const size = pngSize(name, await readHead(path.join(dir, name), 24))
    if (size.width < 2 || size.height < 2) throw new TapeError(`${name} is ${size.width}×${size.height}; frames must be at least 2×2`)
    if (size.width > MAX_FRAME_SIDE || size.height > MAX_FRAME_SIDE) {
      throw new TapeError(`${name} is ${size.width}×${size.height}; frames may be at most ${MAX_FRAME_SIDE} pixels on a side`)
    }
    first ??= size
    if (size.width !== first.width || size.height !== first.height) {
      throw new TapeError(`${name} is ${size.width}×${size.height} but ${frames[0]} is ${first.width}×${first.height}; all frames must be the same size`)
    }
  }
  return first!
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** PNG dimensions from the signature and IHDR (bytes 16-23). */
function pngSize(name: string, head: Buffer): { width: number; height: number } {
  if (head.length < 24 || !head.subarray(0, 8).equals(PNG_SIGNATURE) || head.toString('latin1', 12, 16) !== 'IHDR') {
    throw new TapeError(`${name} is not a PNG`)
  }
  return { width: head.readUInt32BE(16), height: head.readUInt32BE(20) }
}

async function readHead(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r')
  try {
    const buf = Buffer.alloc(bytes)
    const { bytesRead } = await handle.read(buf, 0, bytes, 0)
    return buf.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

const timingSchema = z.array(z.looseObject({ duration: z.number().finite().nonnegative() })).min(1)

/**
 * AC's rate without a soundtrack: 1000 / mean frame duration (ms) from timing.json; 60 when the
 * file is missing, not JSON, empty, lacks a numeric `duration` per frame, or averages to 0.
 */
export function timingFps(json: string | null): number {
  if (json === null) return DEFAULT_FPS
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    return DEFAULT_FPS
  }
  const timing = timingSchema.safeParse(parsed)
  if (!timing.success) return DEFAULT_FPS
  const meanMs = timing.data.reduce((sum, f) => sum + f.duration, 0) / timing.data.length
  return meanMs > 0 ? 1000 / meanMs : DEFAULT_FPS
}

/**
 * Duration in seconds of a RIFF/WAVE file from its header: `data` chunk bytes / `fmt ` byte
 * rate. A data size past the end of the file (streamed WAVs write 0xFFFFFFFF) counts what is there.
 * @throws TapeError when it is not a WAVE file, has no `fmt `/`data` chunk, or lasts 0 s.
 */
export function wavSeconds(wav: Buffer): number {
  const bad = (why: string) => new TapeError(`soundtrack.wav: ${why}`)
  if (wav.length < 12 || wav.toString('latin1', 0, 4) !== 'RIFF' || wav.toString('latin1', 8, 12) !== 'WAVE') throw bad('not a RIFF/WAVE file')
  let byteRate = 0
  for (let at = 12; at + 8 <= wav.length;) {
    const id = wav.toString('latin1', at, at + 4)
    const size = wav.readUInt32LE(at + 4)
    if (id === 'fmt ' && at + 16 <= wav.length) byteRate = wav.readUInt32LE(at + 16)
    if (id === 'data') {
      if (!byteRate) throw bad('no fmt chunk with a byte rate before the data chunk')
      const bytes = Math.min(size, wav.length - at - 8)
      if (bytes <= 0) throw bad('the data chunk is empty')
      return bytes / byteRate
    }
    at += 8 + size + (size % 2) // chunks are padded to an even size
  }
  throw bad('no data chunk')
}

function even(n: number): number {
  return n - (n % 2)
}

/** ffmpeg arguments for AC's conversion; see {@link convertTape}. */
function ffmpegArgs(dir: string, fps: number, hasAudio: boolean, out: string): string[] {
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-framerate', String(fps), '-i', path.join(dir, 'frame-%05d.png')]
  if (hasAudio) args.push('-i', path.join(dir, 'soundtrack.wav'))
  args.push('-map', '0:v:0', ...(hasAudio ? ['-map', '1:a:0'] : []))
  args.push('-vf', 'scale=trunc(iw/2)*2:trunc(ih/2)*2:flags=neighbor', '-c:v', 'libx264', '-pix_fmt', 'yuv420p')
  if (hasAudio) args.push('-c:a', 'aac', '-b:a', '128k')
  args.push('-movflags', '+faststart', '-t', String(MAX_SECONDS), '-y', out)
  return args
}

/**
 * Default time limit for encoding `pixels` (frames × width × height): 60 s plus 1 s per 4
 * megapixels. Measured here with libx264's default preset on 2 busy cores: about 0.07 s per
 * megapixel (150 frames of 2022×960 in 21 s), so this leaves 3-4× headroom; a 30 s, 60 fps tape
 * of that size gets about 15 minutes.
 */
export function ffmpegTimeoutMs(pixels: number): number {
  return 60_000 + Math.ceil(pixels / 4_000)
}

/** Keeps the end of ffmpeg's stderr for error messages. */
const STDERR_TAIL = 4000

/**
 * Runs ffmpeg (argument array, no shell), killing it after `timeoutMs`.
 * @throws TapeError with the end of stderr when it cannot start, exits non-zero or times out.
 */
function runFfmpeg(args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-STDERR_TAIL)
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(new TapeError(`ffmpeg could not start: ${err.message}`))
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      if (timedOut) reject(new TapeError(`ffmpeg timed out after ${timeoutMs} ms`))
      else if (code !== 0) reject(new TapeError(`ffmpeg exited with code ${code}: ${stderr.trim()}`))
      else resolve()
    })
  })
}

/** The tape thumbnail: the painting thumbnail rule (./thumbnail.ts), re-encoded as JPEG as AC's tapes have it. */
async function jpegThumbnail(frame: Buffer): Promise<Uint8Array> {
  const box = await makeThumbnail(frame, Number.MAX_SAFE_INTEGER)
  const jpeg = await sharp(box.bytes).jpeg({ quality: 90 }).toBuffer()
  if (jpeg.length > THUMBNAIL_MAX_BYTES) throw new TapeError(`thumbnail is ${jpeg.length} bytes, over the ${THUMBNAIL_MAX_BYTES}-byte limit`)
  return jpeg
}

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { crc32, deflateRawSync } from 'node:zlib'
import sharp from 'sharp'

/** Test fixtures for tapes, generated at test time: AC-shaped tape ZIPs and hand-made hostile ZIPs. */

export interface TapeSpec {
  /** Frame size in pixels (as stored in the ZIP). */
  width: number
  height: number
  frames: number
  /** Per-frame durations in ms; `null` leaves timing.json out; a string is written as it is. */
  timing?: number[] | null | string
  /** Seconds of soundtrack.wav (8 kHz mono 16-bit sine); none when absent. */
  soundSeconds?: number
  /** More entries, written as given. */
  extra?: Array<[string, Buffer]>
}

/** A tape ZIP as AC's recorder writes it: frame-NNNNN.png…, timing.json, metadata.json, soundtrack.wav. */
export async function tapeZip(spec: TapeSpec): Promise<Buffer> {
  const entries: Array<[string, Buffer]> = []
  for (let f = 0; f < spec.frames; f++) entries.push([`frame-${String(f).padStart(5, '0')}.png`, await framePng(spec.width, spec.height, f)])
  const timing = spec.timing === undefined ? Array(spec.frames).fill(100) : spec.timing
  if (typeof timing === 'string') entries.push(['timing.json', Buffer.from(timing)])
  else if (timing)
    entries.push([
      'timing.json',
      Buffer.from(
        JSON.stringify(
          timing.map((duration, frame) => ({ frame, filename: `frame-${String(frame).padStart(5, '0')}.png`, duration, timestamp: frame * duration })),
        ),
      ),
    ])
  entries.push(['metadata.json', Buffer.from(JSON.stringify({ version: 1, frameCount: spec.frames, width: spec.width, height: spec.height, scale: 6 }))])
  if (spec.soundSeconds) entries.push(['soundtrack.wav', sineWav(spec.soundSeconds)])
  return makeZip([...entries, ...(spec.extra ?? [])].map(([name, data]) => ({ name, data })))
}

/** A frame whose colour changes with its index, so every frame differs. */
export function framePng(width: number, height: number, index: number): Promise<Buffer> {
  const hue = (index * 47) % 256
  return sharp({ create: { width, height, channels: 3, background: { r: hue, g: 255 - hue, b: (hue * 3) % 256 } } })
    .png()
    .toBuffer()
}

/**
 * A tape of black-and-white noise: tiny as 1-bit PNGs, but H.264's worst case, so its MP4 is
 * several times larger than its ZIP (560×560 × 60 frames: a ~2 MB ZIP becomes a ~7 MB MP4).
 */
export async function noiseTapeZip(width: number, height: number, frames: number): Promise<Buffer> {
  const entries: RawEntry[] = []
  for (let f = 0; f < frames; f++) {
    const raw = randomBytes(width * height).map((b) => (b & 1 ? 255 : 0))
    const png = await sharp(raw, { raw: { width, height, channels: 1 } })
      .png({ palette: true, colours: 2, dither: 0 })
      .toBuffer()
    entries.push({ name: `frame-${String(f).padStart(5, '0')}.png`, data: png, store: true })
  }
  return makeZip(entries)
}

/** A mono 16-bit PCM WAV of a 440 Hz sine at 8 kHz. */
export function sineWav(seconds: number, rate = 8000): Buffer {
  const samples = Math.round(seconds * rate)
  const data = Buffer.alloc(samples * 2)
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 8000), i * 2)
  const h = Buffer.alloc(44)
  h.write('RIFF', 0, 'latin1')
  h.writeUInt32LE(36 + data.length, 4)
  h.write('WAVEfmt ', 8, 'latin1')
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20) // PCM
  h.writeUInt16LE(1, 22) // mono
  h.writeUInt32LE(rate, 24)
  h.writeUInt32LE(rate * 2, 28) // byte rate
  h.writeUInt16LE(2, 32)
  h.writeUInt16LE(16, 34)
  h.write('data', 36, 'latin1')
  h.writeUInt32LE(data.length, 40)
  return Buffer.concat([h, data])
}

export interface RawEntry {
  /** Written byte for byte, so hostile names (`../evil.png`, `a\b`) survive. */
  name: string
  data: Buffer
  /** Deflate (default) or store. */
  store?: boolean
  /** Lie in the headers about the inflated size. */
  declaredSize?: number
}

/**
 * A minimal ZIP writer (local headers, central directory, end record; no ZIP64) that writes
 * whatever it is given: the hostile archives a careful writer such as yazl refuses to make.
 */
export function makeZip(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = []
  const central: Buffer[] = []
  let offset = 0
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8')
    const body = e.store ? e.data : deflateRawSync(e.data)
    const fields = { method: e.store ? 0 : 8, crc: crc32(e.data), compressed: body.length, size: e.declaredSize ?? e.data.length }
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    writeCommon(local, 4, fields, name.length)
    parts.push(local, name, body)
    const dir = Buffer.alloc(46)
    dir.writeUInt32LE(0x02014b50, 0)
    dir.writeUInt16LE(20, 4) // version made by
    writeCommon(dir, 6, fields, name.length)
    dir.writeUInt32LE(offset, 42)
    central.push(dir, name)
    offset += local.length + name.length + body.length
  }
  const cd = Buffer.concat(central)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.length, 8)
  end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(cd.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...parts, cd, end])
}

/** The header fields local and central headers share, from "version needed" to the name length. */
function writeCommon(buf: Buffer, at: number, f: { method: number; crc: number; compressed: number; size: number }, nameLength: number) {
  buf.writeUInt16LE(20, at) // version needed
  buf.writeUInt16LE(0x800, at + 2) // UTF-8 names
  buf.writeUInt16LE(f.method, at + 4)
  buf.writeUInt32LE(0, at + 6) // time, date
  buf.writeUInt32LE(f.crc >>> 0, at + 10)
  buf.writeUInt32LE(f.compressed, at + 14)
  buf.writeUInt32LE(f.size, at + 18)
  buf.writeUInt16LE(nameLength, at + 22)
}

export interface Probe {
  streams: Array<{
    codec_type: string
    codec_name: string
    pix_fmt?: string
    width?: number
    height?: number
    avg_frame_rate?: string
    nb_read_frames?: string
  }>
  format: { duration: string; format_name: string }
}

/** ffprobe (with frame counting) of an MP4 held in memory. */
export async function ffprobe(mp4: Uint8Array): Promise<Probe> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ac-probe-'))
  try {
    const file = path.join(dir, 'video.mp4')
    await writeFile(file, mp4)
    const out = await capture('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-show_format', '-of', 'json', file])
    return JSON.parse(out) as Probe
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function capture(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d: Buffer) => (out += d.toString()))
    p.stderr.on('data', (d: Buffer) => (err += d.toString()))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}: ${err}`))))
  })
}

/** Evaluates an ffprobe rate such as "25/6". */
export function rate(r: string | undefined): number {
  const [n, d] = (r ?? '0/1').split('/').map(Number)
  return n / (d || 1)
}

/** Top-level MP4 box types in order (`ftyp`, `moov`, `mdat`…): `+faststart` puts moov before mdat. */
export function topBoxes(mp4: Uint8Array): string[] {
  const buf = Buffer.from(mp4.buffer, mp4.byteOffset, mp4.byteLength)
  const boxes: string[] = []
  for (let at = 0; at + 8 <= buf.length;) {
    const size = buf.readUInt32BE(at)
    boxes.push(buf.toString('latin1', at + 4, at + 8))
    if (size < 8) break
    at += size
  }
  return boxes
}

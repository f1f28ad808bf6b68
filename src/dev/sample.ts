/**
 * AC-shaped sample data for dev and tests.
 *
 * {@link seedSample} fills AC's MongoDB collections (`users`, `@handles`, `paintings`,
 * `moods`, `pieces`, `kidlisp`, `tapes`) exactly in the shapes described in
 * docs/data-model.md, writes the media files AC keeps in object storage
 * (painting PNGs and recording ZIPs, tape frame ZIPs, MP4s and thumbnails) into a folder
 * served by `media-server.ts`, creates PDS accounts for most users, and reproduces the
 * "legacy" records AC's own scripts already created on the PDS (server-assigned rkeys,
 * `validate: false`, AC's known off-schema fields) together with AC's three back-reference
 * shapes in MongoDB.
 *
 * Reproducibility: everything is drawn from a seeded PRNG (mulberry32); per-item media use
 * their own forked generators so concurrency never changes the output. ObjectIds are derived
 * from `when` plus PRNG bytes, so they are reproducible too. Not reproducible: DIDs, PDS
 * handles/passwords (chosen by the `createAccount` callback), rkeys/CIDs of the legacy records,
 * `users.atproto.createdAt`, and MP4 bytes (x264 output may differ between ffmpeg builds).
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFile, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { seedNewsAndPapers, type NewsSample } from './sample-news.js'
import { AtpAgent } from '@atproto/api'
import { ObjectId, type Db, type Document } from 'mongodb'
import { customRandom, urlAlphabet } from 'nanoid'
import sharp from 'sharp'
import yazl from 'yazl'

// ───────────────────────────── public types ─────────────────────────────

/** Credentials of a PDS account, as stored by AC in `users.atproto`. */
export interface SampleAccount {
  did: string
  handle: string
  password: string
}

/** Options of {@link seedSample}. */
export interface SampleOptions {
  /** AC's database (normally named `aesthetic`). The seeded collections must be empty. */
  db: Db
  /** Folder where media files are written: `<mediaDir>/<bucket>/<key>`. Created if missing. */
  mediaDir: string
  /** Public base URL of a bucket, without trailing slash (see `startMediaServer`). */
  storageUrl: (bucket: string) => string
  /** The PDS where the accounts live (used to log in and write the legacy records). */
  pdsUrl: string
  /**
   * Creates a PDS account for a local name and returns its credentials. The name is the
   * user's AC handle (may contain `.` or `_`; 3-16 characters), else the user code
   * (`ac25wila`), and `art` for the guest account. The callback turns it into a valid
   * handle. If it rejects for a handle, the user code is tried once (AC's own fallback).
   */
  createAccount: (name: string) => Promise<SampleAccount>
  /** `small` (default): ~200 items, seconds. `ac`: AC's real counts (see docs/data-model.md). */
  scale?: 'small' | 'ac'
  /** PRNG seed (default 1). Same seed → same data, except what the module docs list. */
  seed?: number
  /** Progress messages. */
  log?: (msg: string) => void
}

/** Counts for one kind of item. */
export interface KindSummary {
  /** All documents. */
  total: number
  /** Not nuked / not deleted. */
  live: number
  /** `nuked: true` (moods: `deleted: true`). */
  removed: number
  /** Documents without a `user` field (always 0 for moods). */
  anonymous: number
}

/** What {@link seedSample} created (news and papers: see src/dev/sample-news.ts). */
export interface SampleSummary {
  scale: 'small' | 'ac'
  seed: number
  /** Wall-clock time of the whole seeding, milliseconds. */
  elapsedMs: number
  users: {
    /** Documents in `users`, including `art-guest`. */
    total: number
    /** Users (not counting `art-guest`) with `atproto` credentials. */
    withAccount: number
    /** Users without `atproto` (no PDS account). */
    withoutAccount: number
    /** Users with an `@handles` entry. */
    withHandle: number
    /** Users whose subject has the `sotce-` tenant prefix. */
    sotce: number
  }
  /** Documents in `@handles`. */
  handles: number
  /** The guest account (`users._id: "art-guest"`), owner of anonymous items on the PDS. */
  guest: SampleAccount
  paintings: KindSummary & { withRecording: number }
  moods: KindSummary
  pieces: KindSummary
  kidlisp: KindSummary & { longestSource: number; codesLongerThan3: number }
  tapes: KindSummary & { complete: number; pending: number; withSoundtrack: number }
  /** Records AC "already created" on the PDS, by MongoDB back-reference shape. */
  legacy: {
    /** `atproto: { rkey }` only. */
    rkeyOnly: number
    /** `atproto: { rkey, uri }`. */
    rkeyUri: number
    /** `at: { rkey, uri, cid }` (tapes), including those that also carry `atproto`. */
    at: number
    /** Tapes carrying both `at` and `atproto`. */
    atAndAtproto: number
    /** Nuked items whose legacy record is still on the PDS (the writer must delete it). */
    nukedWithRecord: number
    /** Legacy records per kind. */
    byKind: Record<SampleKind, number>
    /** Records using AC's off-schema shapes: moods with `text`, moods with `mongoId`. */
    moodsWithText: number
    moodsWithMongoId: number
  }
  /** A few live codes with their prefix: `#abc`, `$abc`, `!abc`; handles without `@`. */
  examples: { paintings: string[]; kidlisp: string[]; tapes: string[]; handles: string[] }
  /** The user with the most items. */
  busiestUser: { id: string; handle?: string; paintings: number; moods: number; kidlisp: number }
  newsAndPapers: NewsSample
}

/** The kinds seeded. */
export type SampleKind = 'painting' | 'mood' | 'piece' | 'kidlisp' | 'tape'

/** Bucket names used by AC (docs/data-model.md, "Media"). */
export const SAMPLE_BUCKETS = {
  /** paintings, pieces and tape ZIPs of logged-in users */
  user: 'user-aesthetic-computer',
  /** the same for guests (anonymous items) */
  guest: 'art-aesthetic-computer',
  /** finished tape MP4s and their thumbnails: `tapes/{code}.mp4`, `tapes/{code}-thumb.jpg` */
  blobs: 'at-blobs-aesthetic-computer',
} as const

/** `users._id` of AC's guest account, which owns anonymous items on the PDS. */
export const GUEST_USER_ID = 'art-guest'

/** NSIDs of AC's record lexicons. */
export const SAMPLE_NSIDS: Record<SampleKind, string> = {
  painting: 'computer.aesthetic.painting',
  mood: 'computer.aesthetic.mood',
  piece: 'computer.aesthetic.piece',
  kidlisp: 'computer.aesthetic.kidlisp',
  tape: 'computer.aesthetic.tape',
}

// ───────────────────────────── PRNG ─────────────────────────────

/**
 * mulberry32: a tiny 32-bit PRNG. Returns a function yielding floats in [0, 1).
 * Good enough for sample data; not for anything secret.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** 32-bit FNV-1a of a string, used to fork generators by label. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** Convenience wrapper around {@link mulberry32}. */
class Rng {
  readonly next: () => number
  constructor(readonly seed: number) {
    this.next = mulberry32(seed)
  }
  /** Integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(arr: readonly T[]): T {
    return arr[Math.floor(this.next() * arr.length)]
  }
  /** Pick with weights (same length as `arr`). */
  weighted<T>(arr: readonly T[], weights: readonly number[]): T {
    const total = weights.reduce((a, b) => a + b, 0)
    let r = this.next() * total
    for (let i = 0; i < arr.length; i++) {
      r -= weights[i]
      if (r < 0) return arr[i]
    }
    return arr[arr.length - 1]
  }
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1))
      ;[arr[i], arr[j]] = [arr[j], arr[i]]
    }
    return arr
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256)
    return out
  }
  hex(n: number): string {
    let s = ''
    for (let i = 0; i < n; i++) s += Math.floor(this.next() * 16).toString(16)
    return s
  }
  str(alphabet: string, n: number): string {
    let s = ''
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)]
    return s
  }
  /** An independent generator derived from this seed and a label. */
  fork(label: string | number): Rng {
    return new Rng((fnv1a(`${this.seed}:${label}`) ^ Math.imul(this.seed, 0x9e3779b1)) >>> 0)
  }
}

// ───────────────────────────── scale ─────────────────────────────

interface ScaleSpec {
  users: number
  accounts: number
  /** users with a handle, among them `accounts - accountsWithoutHandle` account holders */
  handles: number
  accountsWithoutHandle: number
  sotce: number
  paintings: number
  paintingsAnon: number
  paintingsNuked: number
  paintingRecordings: number
  extraLegacyCodes: number
  moods: number
  moodsDeleted: number
  longMoods: number
  kidlisp: number
  kidlispAnon: number
  kidlispNuked: number
  longKidlisp: number[]
  pieces: number
  piecesAnon: number
  piecesNuked: number
  tapes: number
  tapesAnon: number
  tapesNukedComplete: number
  tapesNukedPending: number
  tapesComplete: number
  /** fixed item counts for the busiest users (index 0 is `jeffrey`) */
  busy: Array<{ paintings: number; moods: number; kidlisp: number }>
  /** every user gets one item of each kind before weighted picks (small only) */
  roundRobin: boolean
  /** distinct painting PNGs / recording ZIPs rendered; others are hard links (null: one each) */
  pngPool: number | null
  zipPool: number | null
  accountConcurrency: number
  legacy: { paintings: number; moods: number; kidlisp: number; pieces: number; tapes: number }
}

const SCALES: Record<'small' | 'ac', ScaleSpec> = {
  small: {
    users: 24,
    accounts: 20,
    handles: 20,
    accountsWithoutHandle: 2,
    sotce: 2,
    paintings: 60,
    paintingsAnon: 12,
    paintingsNuked: 4,
    paintingRecordings: 10,
    extraLegacyCodes: 0,
    moods: 50,
    moodsDeleted: 4,
    longMoods: 3,
    kidlisp: 60,
    kidlispAnon: 12,
    kidlispNuked: 2,
    longKidlisp: [1_500, 9_000, 45_000],
    pieces: 15,
    piecesAnon: 4,
    piecesNuked: 2,
    tapes: 12,
    tapesAnon: 6,
    tapesNukedComplete: 1,
    tapesNukedPending: 1,
    tapesComplete: 6,
    busy: [{ paintings: 8, moods: 6, kidlisp: 8 }],
    roundRobin: true,
    pngPool: null,
    zipPool: null,
    accountConcurrency: 6,
    legacy: { paintings: 5, moods: 5, kidlisp: 4, pieces: 2, tapes: 3 },
  },
  ac: {
    users: 4_201,
    accounts: 978,
    handles: 2_796,
    accountsWithoutHandle: 48,
    sotce: 12,
    paintings: 4_386,
    paintingsAnon: 1_064,
    paintingsNuked: 60,
    paintingRecordings: 420,
    extraLegacyCodes: 120,
    moods: 2_805,
    moodsDeleted: 80,
    longMoods: 25,
    kidlisp: 14_677,
    kidlispAnon: 1_988,
    kidlispNuked: 10,
    longKidlisp: [1_500, 3_000, 6_000, 9_000, 12_000, 20_000, 30_000, 45_000, 49_000],
    pieces: 265,
    piecesAnon: 60,
    piecesNuked: 8,
    tapes: 40,
    tapesAnon: 32,
    tapesNukedComplete: 1,
    tapesNukedPending: 2,
    tapesComplete: 20,
    busy: [
      { paintings: 395, moods: 226, kidlisp: 2_220 },
      { paintings: 384, moods: 40, kidlisp: 150 },
    ],
    roundRobin: false,
    pngPool: 300,
    zipPool: 40,
    accountConcurrency: 8,
    legacy: { paintings: 8, moods: 8, kidlisp: 6, pieces: 3, tapes: 4 },
  },
}

// ───────────────────────────── constants ─────────────────────────────

/** AC's alphabet for new short codes: lowercase and digits without 0 and 1 (34 chars). */
const CODE_ALPHABET = 'abcdefghijklmnopqrstuvwxyz23456789'
/** AC's fallback after 50 collisions: mixed case without 0 and 1 (60 chars). */
const CODE_ALPHABET_60 = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ23456789'
/** Legacy codes contain 0 and 1 as well. */
const LEGACY_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
/** Legacy painting codes quoted in docs/data-model.md. */
const KNOWN_LEGACY_CODES = ['WDv', '9Yo', 'eKZ', '39i', '1fi']

const T_START = Date.UTC(2021, 0, 1)
const T_END = Date.UTC(2026, 1, 1)
const KIND_START: Record<SampleKind, number> = {
  painting: Date.UTC(2021, 5, 1),
  mood: Date.UTC(2022, 0, 1),
  piece: Date.UTC(2022, 5, 1),
  kidlisp: Date.UTC(2024, 5, 1),
  tape: Date.UTC(2025, 0, 1),
}
const DAY = 86_400_000
const TAPE_SCALE = 6

const FIXED_HANDLES = [
  'jeffrey',
  'fifi',
  'mrs.pixel',
  'ada_l',
  'wiggle',
  'rosa.blue',
  'jo',
  'tom_tom',
  'neon.cat',
  'bonk',
  'sleepy_owl',
  'kidlisper',
  'pastel',
  'm.o.o.n',
  'glitchgirl',
  'prutti',
  'zebra_9',
  'ink.drop',
  'noodle',
  'cosmo',
]
const ADJ = [
  'quiet',
  'neon',
  'tiny',
  'big',
  'soft',
  'wild',
  'blue',
  'pink',
  'lazy',
  'happy',
  'odd',
  'fuzzy',
  'pixel',
  'sunny',
  'dark',
  'cosmic',
  'paper',
  'velvet',
  'rusty',
  'lucky',
  'glitch',
  'mellow',
  'sleepy',
  'brave',
  'cloudy',
  'loud',
  'green',
  'gold',
  'silly',
  'bitter',
  'sweet',
  'salty',
]
const NOUN = [
  'cat',
  'fox',
  'moth',
  'owl',
  'brush',
  'paint',
  'frog',
  'bee',
  'kid',
  'wave',
  'loop',
  'dot',
  'star',
  'moon',
  'bean',
  'tape',
  'ink',
  'box',
  'leaf',
  'fern',
  'yak',
  'orca',
  'pony',
  'crab',
  'newt',
  'snail',
  'ghost',
  'robot',
  'pearl',
  'storm',
]

// ───────────────────────────── plan ─────────────────────────────

interface PlanUser {
  id: string
  code: string
  when: Date
  handle?: string
  hasAccount: boolean
  sotce: boolean
  weight: number
  /** index in SCALES.busy, if this is a busy user */
  busy?: number
  account?: SampleAccount
}

type LegacyShape = 'rkey' | 'rkey+uri' | 'at' | 'at+atproto'

interface PlanItem {
  kind: SampleKind
  doc: Document & { _id: ObjectId; when: Date; user?: string }
  owner?: PlanUser
  removed: boolean
  legacy?: LegacyShape
  /** mood records: write `text` instead of `mood` / `mongoId` instead of `ref` */
  legacyText?: boolean
  legacyMongoId?: boolean
  /** painting: a record without thumbnail; tape: a record with thumbnail + zipUrl */
  legacyVariant?: boolean
  // painting media
  png?: { w: number; h: number; seed: number; pool: number; file: string; recording?: { file: string; pool: number } }
  // tape media
  tape?: { zipFile: string; mp4?: boolean; sound: boolean; seed: number }
}

/** Forms an ObjectId from a date (seconds, big-endian, as MongoDB does) and 8 PRNG bytes. */
function objectIdAt(rng: Rng, when: Date): ObjectId {
  const buf = Buffer.alloc(12)
  buf.writeUInt32BE(Math.floor(when.getTime() / 1000) >>> 0, 0)
  Buffer.from(rng.bytes(8)).copy(buf, 4)
  return new ObjectId(buf)
}

function randDate(rng: Rng, from: number, to: number): Date {
  return new Date(from + Math.floor(rng.next() * Math.max(1, to - from)))
}

/** AC's user-painting slug: `2023.8.24.16.21.09.123` (unpadded date/hour, padded min/s/ms). */
function timestampSlug(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0')
  return `${d.getUTCFullYear()}.${d.getUTCMonth() + 1}.${d.getUTCDate()}.${d.getUTCHours()}.${p(d.getUTCMinutes())}.${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`
}

/** AC's rule for PDS handle labels: lowercase, `.`/`_` → `-`. */
function handleLabel(handle: string): string {
  return handle.toLowerCase().replace(/[._]/g, '-')
}

function uniqueCode(rng: Rng, taken: Set<string>, len = 3): string {
  // AC: 3 chars from the 34-char alphabet; after 50 collisions the 60-char alphabet; after 100,
  // an unchecked 4-char code (checked here, to keep `code` unique).
  for (let i = 0; ; i++) {
    const alphabet = i < 50 ? CODE_ALPHABET : CODE_ALPHABET_60
    const c = rng.str(alphabet, i < 100 ? len : len + 1)
    if (!taken.has(c)) {
      taken.add(c)
      return c
    }
  }
}

/**
 * Hands out `n` owners: `anon` anonymous slots, fixed counts for busy users, then (small) one
 * per remaining user in turn, then weighted picks. The result is shuffled.
 */
function assignOwners(rng: Rng, n: number, anon: number, users: PlanUser[], fixed: (u: PlanUser) => number, roundRobin: boolean): Array<PlanUser | undefined> {
  const out: Array<PlanUser | undefined> = []
  for (let i = 0; i < anon && out.length < n; i++) out.push(undefined)
  for (const u of users) for (let i = 0, k = fixed(u); i < k && out.length < n; i++) out.push(u)
  const pool = users.filter((u) => u.busy === undefined)
  if (roundRobin) for (const u of rng.shuffle([...pool])) if (out.length < n) out.push(u)
  if (out.length < n) {
    const cum: number[] = []
    let total = 0
    for (const u of pool) cum.push((total += u.weight))
    while (out.length < n) {
      const r = rng.next() * total
      let lo = 0
      let hi = cum.length - 1
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (cum[mid] > r) hi = mid
        else lo = mid + 1
      }
      out.push(pool[lo])
    }
  }
  return rng.shuffle(out)
}

function itemWhen(rng: Rng, kind: SampleKind, owner?: PlanUser): Date {
  const from = Math.max(KIND_START[kind], owner ? owner.when.getTime() + 60_000 : 0)
  return randDate(rng, from, T_END)
}

function planUsers(rng: Rng, spec: ScaleSpec): PlanUser[] {
  const users: PlanUser[] = []
  const ids = new Set<string>()
  const codes = new Set<string>()
  // handles: fixed first, then generated; unique by PDS label as well
  const handles: string[] = []
  const labels = new Set<string>()
  const addHandle = (h: string) => {
    const l = handleLabel(h)
    if (labels.has(l) || h.length > 16) return
    labels.add(l)
    handles.push(h)
  }
  for (const h of FIXED_HANDLES) if (handles.length < spec.handles) addHandle(h)
  while (handles.length < spec.handles) {
    const sep = rng.weighted(['', '.', '_', ''], [5, 1, 1.5, 0])
    const num = rng.chance(0.35) ? String(rng.int(1, 999)) : ''
    addHandle(`${rng.pick(ADJ)}${sep}${rng.pick(NOUN)}${num}`)
  }
  // who has what: index order is [account+handle][account, no handle][handle only][neither]
  const withBoth = spec.accounts - spec.accountsWithoutHandle
  for (let i = 0; i < spec.users; i++) {
    const hasAccount = i < spec.accounts
    let handle: string | undefined
    if (i < withBoth) handle = handles[i]
    else if (i >= spec.accounts && i < spec.accounts + (spec.handles - withBoth)) handle = handles[withBoth + (i - spec.accounts)]
    // a couple of users from AC's other tenant: one with an account, one without
    const sotce = (i >= withBoth - spec.sotce / 2 && i < withBoth) || i >= spec.users - spec.sotce / 2
    let id: string
    do id = `${sotce ? 'sotce-' : ''}auth0|${rng.hex(24)}`
    while (ids.has(id))
    ids.add(id)
    const when = i === 0 ? new Date(Date.UTC(2021, 2, 14, 9, 30)) : randDate(rng, T_START, T_END - 20 * DAY)
    let code: string
    do code = `ac${String(when.getUTCFullYear() % 100).padStart(2, '0')}${rng.str('abcdefghijklmnopqrstuvwxyz', 4)}`
    while (codes.has(code))
    codes.add(code)
    users.push({
      id,
      code,
      when,
      handle,
      hasAccount,
      sotce,
      // Zipf-like activity; most users make little, a few make a lot
      weight: 1 / Math.pow(1 + rng.int(0, spec.users), 0.9),
      busy: i < spec.busy.length ? i : undefined,
    })
  }
  return users
}

const MOODS_PLAIN = [
  'tired',
  'happy',
  'making art all day',
  'listening to the rain',
  'bored',
  'excited for the weekend',
  'sad but ok',
  'drawing cats again',
  'coffee',
  'ready to paint',
  'why is it monday',
  'in love with pixels',
  'learning kidlisp!',
  'nervous',
  'chill',
  'hungry',
  'just finished a painting',
  'good morning aesthetic',
  'cant sleep',
  'feeling 8-bit',
  'grateful',
  'so many colors',
  'debugging my piece',
  'snow day',
]
const MOODS_UNICODE = [
  'très content',
  'müde aber glücklich',
  'すごく眠い',
  '심심해',
  'счастлив',
  'سعيد جدا',
  'ñoño día',
  'ça va',
  'Ελπίδα',
  'שלום',
  'हैप्पी',
  '開心',
  'žluťoučký kůň',
  'çok güzel',
]
const MOODS_EMOJI = ['🌈✨', '😴', '🎨🖌️', '👨‍👩‍👧‍👦 family day', '🏳️‍🌈', '🔥🔥🔥', '🐸', '☕️ + 🎹 = 💖', '🫠', '🤖 beep boop']
const MOOD_SENTENCES = [
  'Today I painted a whole city out of tiny squares.',
  'Sometimes the best brush is the one you did not mean to pick.',
  'I keep coming back to this place because it feels like a sketchbook that talks back.',
  'The rain outside matches the gray I used for the background.',
  'Thinking about how every pixel is a decision.',
  'Wrote my first loop in KidLisp and it made the screen dance.',
  'Nobody told me the wiggle function would be this fun.',
  'Long day, but the colors helped.',
]

function moodText(rng: Rng, long: boolean): string {
  if (long) {
    const target = rng.int(1_000, 4_000)
    const parts: string[] = []
    let len = 0
    while (len < target) {
      const s = rng.pick(MOOD_SENTENCES) + (rng.chance(0.2) ? ` ${rng.pick(MOODS_EMOJI)}` : '')
      parts.push(s)
      len += s.length + 1
    }
    return parts
      .join(rng.chance(0.5) ? ' ' : '\n')
      .slice(0, 4_000)
      .trim()
  }
  const r = rng.next()
  if (r < 0.55) return rng.pick(MOODS_PLAIN) + (rng.chance(0.2) ? ` ${rng.pick(MOODS_EMOJI)}` : '')
  if (r < 0.75) return rng.pick(MOODS_UNICODE)
  if (r < 0.9) return rng.pick(MOODS_EMOJI)
  return `${rng.pick(MOODS_PLAIN)}\n${rng.pick(MOODS_PLAIN)}`
}

const COLORS = [
  'red',
  'blue',
  'green',
  'yellow',
  'black',
  'white',
  'purple',
  'orange',
  'pink',
  'cyan',
  'magenta',
  'lime',
  'gray',
  'navy',
  'teal',
  'brown',
  'rainbow',
  'zebra',
]

function kidlispLine(rng: Rng, codes: string[]): string {
  const c = () => rng.pick(COLORS)
  const n = (a: number, b: number) => rng.int(a, b)
  switch (rng.int(0, 17)) {
    case 0:
      return `(wipe ${c()})`
    case 1:
      return `(ink ${c()})`
    case 2:
      return `(ink ${c()} ${n(16, 255)})`
    case 3:
      return `(box ${n(0, 200)} ${n(0, 200)} ${n(4, 80)} ${n(4, 80)})`
    case 4:
      return `(line ${n(0, 200)} ${n(0, 200)} ${n(0, 200)} ${n(0, 200)})`
    case 5:
      return `(circle ${n(0, 200)} ${n(0, 200)} ${n(2, 60)})`
    case 6:
      return `(repeat ${n(2, 30)} i\n  (box (* i ${n(2, 12)}) ${n(0, 100)} ${n(2, 10)} ${n(2, 10)}))`
    case 7:
      return `(scroll ${n(-4, 4)} ${n(-4, 4)})`
    case 8:
      return `(blur ${n(1, 4)})`
    case 9:
      return `(zoom 1.0${n(1, 9)})`
    case 10:
      return `(spin ${n(-5, 5)})`
    case 11:
      return `(${rng.pick(['0.5s', '1s', '2s', '1.5s'])} (wipe ${c()}))`
    case 12:
      return `(ink (? ${c()} ${c()} ${c()}))`
    case 13:
      return `(box (wiggle ${n(2, 40)}) ${n(0, 100)} ${n(4, 40)} ${n(4, 40)})`
    case 14:
      return `(line 0 0 width height)`
    case 15:
      return `(write "${rng.pick(['hello', 'hi', 'aesthetic', 'kidlisp', 'wow', ':)'])}" ${n(0, 80)} ${n(0, 80)})`
    case 16:
      return codes.length ? `($${rng.pick(codes)} 0 0 ${n(16, 128)} ${n(16, 128)})` : `(fps ${rng.pick([12, 24, 30, 60])})`
    default:
      return `; ${rng.pick(['try this', 'my first one', 'remix me', 'todo: more color', 'loop'])}`
  }
}

function kidlispSource(rng: Rng, targetLen: number | undefined, codes: string[]): string {
  const lines: string[] = []
  if (targetLen === undefined) {
    lines.push(`(wipe ${rng.pick(COLORS)})`)
    const k = rng.int(1, 10)
    for (let i = 0; i < k; i++) lines.push(kidlispLine(rng, codes))
    return lines.join('\n')
  }
  lines.push(`; a long one`, `(fps ${rng.pick([24, 30, 60])})`)
  let len = 0
  while (len < targetLen) {
    const l = kidlispLine(rng, codes)
    if (len + l.length + 1 > targetLen) break
    lines.push(l)
    len += l.length + 1
  }
  return lines.join('\n')
}

/** KidLisp codes are often inferred from the source: initials of its first words. */
function inferCode(source: string, maxLen: number): string {
  const words = source.match(/[a-z]+/g) ?? []
  return words
    .slice(0, maxLen)
    .map((w) => w[0])
    .join('')
}

const PIECE_WORDS = [
  'bounce',
  'stars',
  'field',
  'drum',
  'melody',
  'garden',
  'clock',
  'worm',
  'maze',
  'spiral',
  'snow',
  'rain',
  'piano',
  'grid',
  'bubbles',
  'orbit',
]

interface Plan {
  users: PlanUser[]
  paintings: PlanItem[]
  moods: PlanItem[]
  pieces: PlanItem[]
  kidlisp: PlanItem[]
  tapes: PlanItem[]
}

function planItems(rng: Rng, spec: ScaleSpec, users: PlanUser[]): Plan {
  const busy = (k: 'paintings' | 'moods' | 'kidlisp') => (u: PlanUser) => (u.busy !== undefined ? spec.busy[u.busy][k] : 0)
  const sortByWhen = (items: PlanItem[]) => items.sort((a, b) => a.doc.when.getTime() - b.doc.when.getTime())
  const finish = (items: PlanItem[], r: Rng) => {
    sortByWhen(items)
    for (const it of items) it.doc._id = objectIdAt(r, it.doc.when)
    return items
  }
  const base = (kind: SampleKind, owner: PlanUser | undefined, r: Rng): PlanItem => {
    const when = itemWhen(r, kind, owner)
    const doc: PlanItem['doc'] = { _id: new ObjectId('000000000000000000000000'), when }
    return { kind, doc, owner, removed: false }
  }
  const bucketOf = (owner?: PlanUser) => (owner ? SAMPLE_BUCKETS.user : SAMPLE_BUCKETS.guest)

  // paintings
  const pr = rng.fork('paintings')
  const paintings = assignOwners(pr, spec.paintings, spec.paintingsAnon, users, busy('paintings'), spec.roundRobin).map((o) => base('painting', o, pr))
  finish(paintings, pr)
  const pCodes = new Set<string>()
  const legacyCodes = [...KNOWN_LEGACY_CODES]
  for (let i = 0; i < spec.extraLegacyCodes; i++) {
    let c: string
    do c = pr.str(LEGACY_ALPHABET, 3)
    while (legacyCodes.includes(c) || !/[A-Z01]/.test(c))
    legacyCodes.push(c)
  }
  legacyCodes.forEach((c) => pCodes.add(c))
  const guestSlug = customRandom(urlAlphabet, 8, (n) => pr.bytes(n))
  const slugs = new Set<string>()
  const recordingIdx = new Set(pr.shuffle([...paintings.keys()]).slice(0, spec.paintingRecordings))
  paintings.forEach((p, i) => {
    // the oldest paintings carry AC's legacy codes
    const code = i < legacyCodes.length ? legacyCodes[i] : uniqueCode(pr, pCodes)
    let imageSlug: string
    do imageSlug = p.owner ? timestampSlug(new Date(p.doc.when.getTime() + pr.int(0, 999))) : guestSlug()
    while (slugs.has(imageSlug))
    slugs.add(imageSlug)
    let recordingSlug: string | undefined
    if (recordingIdx.has(i)) {
      do recordingSlug = p.owner ? timestampSlug(new Date(p.doc.when.getTime() - pr.int(5_000, 600_000))) : guestSlug()
      while (slugs.has(recordingSlug))
      slugs.add(recordingSlug)
    }
    const bucket = bucketOf(p.owner)
    const dir = p.owner ? `${p.owner.id}/painting/` : ''
    const { w, h } = pickDimensions(pr)
    p.doc = {
      _id: p.doc._id,
      code,
      slug: recordingSlug ? `${imageSlug}:${recordingSlug}` : imageSlug,
      when: p.doc.when,
      bucket,
      ...(p.owner ? { user: p.owner.id } : {}),
    }
    p.png = {
      w,
      h,
      seed: pr.int(0, 2 ** 31),
      pool: spec.pngPool ? i % spec.pngPool : i,
      file: `${bucket}/${dir}${imageSlug}.png`,
      recording: recordingSlug ? { file: `${bucket}/${dir}${recordingSlug}.zip`, pool: spec.zipPool ? i % spec.zipPool : i } : undefined,
    }
  })
  // a few fixed sizes so both ends of the range are always present
  const forced: Array<[number, number]> = [
    [32, 32],
    [2048, 2048],
    [2048, 1152],
    [48, 320],
    [1024, 32],
  ]
  forced.forEach(([w, h], k) => {
    // early indices are the first user of their pool image, so this holds when pooled too
    const p = paintings[k * 3 + 1]
    if (p?.png) Object.assign(p.png, { w, h })
  })
  if (spec.pngPool) {
    // pooled: the dimensions of a painting are those of its pool image
    const byPool = new Map<number, { w: number; h: number; seed: number }>()
    for (const p of paintings) {
      const png = p.png!
      const first = byPool.get(png.pool)
      if (first) Object.assign(png, first)
      else byPool.set(png.pool, { w: png.w, h: png.h, seed: png.seed })
    }
  }

  // moods (never anonymous)
  const mr = rng.fork('moods')
  const moods = assignOwners(mr, spec.moods, 0, users, busy('moods'), spec.roundRobin).map((o) => base('mood', o, mr))
  finish(moods, mr)
  const longMoods = new Set(mr.shuffle([...moods.keys()]).slice(0, spec.longMoods))
  moods.forEach((m, i) => {
    m.doc = { _id: m.doc._id, mood: moodText(mr, longMoods.has(i)), when: m.doc.when, user: m.owner!.id }
  })

  // pieces
  const pcr = rng.fork('pieces')
  const pieces = assignOwners(pcr, spec.pieces, spec.piecesAnon, users, () => 0, spec.roundRobin).map((o) => base('piece', o, pcr))
  finish(pieces, pcr)
  const pieceCodes = new Set<string>()
  const pieceSlugs = new Set<string>()
  const pieceNano = customRandom(urlAlphabet, 10, (n) => pcr.bytes(n))
  for (const p of pieces) {
    let slug: string
    do slug = pcr.chance(0.6) ? `${pcr.pick(PIECE_WORDS)}-${pcr.pick(PIECE_WORDS)}${pcr.chance(0.3) ? `-${pcr.int(2, 9)}` : ''}` : pieceNano()
    while (pieceSlugs.has(slug))
    pieceSlugs.add(slug)
    p.doc = {
      _id: p.doc._id,
      code: uniqueCode(pcr, pieceCodes),
      slug: slug.slice(0, 100),
      when: p.doc.when,
      bucket: bucketOf(p.owner),
      ...(p.owner ? { user: p.owner.id } : {}),
    }
  }

  // kidlisp
  const kr = rng.fork('kidlisp')
  const kidlisp = assignOwners(kr, spec.kidlisp, spec.kidlispAnon, users, busy('kidlisp'), spec.roundRobin).map((o) => base('kidlisp', o, kr))
  finish(kidlisp, kr)
  const kCodes = new Set<string>()
  const hashes = new Set<string>()
  const usedCodes: string[] = []
  const longIdx = new Map<number, number>()
  kr.shuffle([...kidlisp.keys()])
    .slice(0, spec.longKidlisp.length)
    .forEach((idx, k) => longIdx.set(idx, spec.longKidlisp[k]))
  kidlisp.forEach((k, i) => {
    let source = kidlispSource(kr, longIdx.get(i), usedCodes.slice(-50))
    let hash = sha256(source)
    for (let v = 2; hashes.has(hash); v++) {
      source = `${source}\n; v${v}`
      hash = sha256(source)
    }
    hashes.add(hash)
    let code: string
    const inferred = kr.chance(0.3) ? inferCode(source, kr.int(4, 6)) : ''
    if (inferred.length >= 4 && !kCodes.has(inferred)) {
      code = inferred
      kCodes.add(code)
    } else code = uniqueCode(kr, kCodes)
    usedCodes.push(code)
    const hitsRoll = kr.next()
    k.doc = {
      _id: k.doc._id,
      code,
      source,
      hash,
      when: k.doc.when,
      lastAccessed: randDate(kr, k.doc.when.getTime(), T_END),
      hits: hitsRoll < 0.6 ? kr.int(0, 10) : hitsRoll < 0.95 ? kr.int(10, 500) : kr.int(500, 20_000),
      ...(k.owner ? { user: k.owner.id } : {}),
    }
  })

  // tapes
  const tr = rng.fork('tapes')
  const tapes = assignOwners(tr, spec.tapes, spec.tapesAnon, users, () => 0, spec.roundRobin).map((o) => base('tape', o, tr))
  finish(tapes, tr)
  const tCodes = new Set<string>()
  const tapeSlug = customRandom(urlAlphabet, 8, (n) => tr.bytes(n))
  const completeIdx = new Set(tr.shuffle([...tapes.keys()]).slice(0, spec.tapesComplete))
  tapes.forEach((t, i) => {
    const slug = tapeSlug()
    const bucket = bucketOf(t.owner)
    t.doc = {
      _id: t.doc._id,
      code: uniqueCode(tr, tCodes),
      slug,
      when: t.doc.when,
      bucket,
      ...(t.owner ? { user: t.owner.id } : {}),
      nuked: false,
      mp4Status: 'pending',
    }
    t.tape = { zipFile: `${bucket}/${t.owner ? `${t.owner.id}/` : ''}${slug}.zip`, mp4: completeIdx.has(i), sound: tr.chance(0.5), seed: tr.int(0, 2 ** 31) }
  })

  // removals
  const remove = (items: PlanItem[], count: number, r: Rng, field: 'nuked' | 'deleted', filter: (it: PlanItem) => boolean = () => true) => {
    const cands = r.shuffle(items.filter((it) => !it.removed && filter(it)))
    for (const it of cands.slice(0, count)) {
      it.removed = true
      it.doc[field] = true
    }
  }
  const rr = rng.fork('removals')
  // keep at least one nuked painting anonymous and one owned
  remove(paintings, 1, rr, 'nuked', (p) => !p.owner)
  remove(paintings, spec.paintingsNuked - 1, rr, 'nuked', (p) => !!p.owner)
  remove(moods, spec.moodsDeleted, rr, 'deleted')
  remove(pieces, spec.piecesNuked, rr, 'nuked')
  remove(kidlisp, spec.kidlispNuked, rr, 'nuked')
  remove(tapes, spec.tapesNukedComplete, rr, 'nuked', (t) => !!t.tape?.mp4)
  remove(tapes, spec.tapesNukedPending, rr, 'nuked', (t) => !t.tape?.mp4)

  // legacy records: live items whose owner has (or will have) a PDS account; anonymous items
  // belong to art-guest
  const lr = rng.fork('legacy')
  const eligible = (it: PlanItem) => !it.removed && (!it.owner || it.owner.hasAccount)
  const chooseLegacy = (items: PlanItem[], count: number, opts: { anon?: number; extra?: (it: PlanItem) => boolean } = {}) => {
    const cands = lr.shuffle(items.filter((it) => eligible(it) && !it.legacy && (opts.extra?.(it) ?? true)))
    const anon = cands.filter((it) => !it.owner).slice(0, opts.anon ?? 0)
    const owned = cands.filter((it) => it.owner).slice(0, count - anon.length)
    // too few owned candidates: fill up with more anonymous ones (art-guest)
    const more = cands.filter((it) => !it.owner && !anon.includes(it)).slice(0, count - anon.length - owned.length)
    return [...anon, ...owned, ...more]
  }
  // paintings: atproto { rkey, uri }, one with { rkey } only, one with a legacy code, one
  // without thumbnail; plus one nuked painting whose record is still on the PDS
  const legacyCodePainting = paintings.find((p) => eligible(p) && /[A-Z01]/.test(p.doc.code as string))
  const lp = chooseLegacy(paintings, spec.legacy.paintings - (legacyCodePainting ? 1 : 0), { anon: 1, extra: (p) => p !== legacyCodePainting })
  if (legacyCodePainting) lp.push(legacyCodePainting)
  lp.forEach((p, k) => {
    p.legacy = k === 1 ? 'rkey' : 'rkey+uri'
    p.legacyVariant = k === 2
  })
  const nukedOwned = paintings.find((p) => p.removed && p.owner?.hasAccount) ?? paintings.find((p) => p.removed && !p.owner)
  if (nukedOwned) nukedOwned.legacy = 'rkey+uri'
  // moods: atproto { rkey }; bulk-synced ones carry `text`; the oldest one `mongoId`
  const lm = chooseLegacy(moods, spec.legacy.moods).sort((a, b) => a.doc.when.getTime() - b.doc.when.getTime())
  lm.forEach((m, k) => {
    m.legacy = 'rkey'
    if (k === 0) m.legacyMongoId = true
    else if (k % 2 === 1 || k === lm.length - 1) m.legacyText = true
  })
  for (const k of chooseLegacy(kidlisp, spec.legacy.kidlisp, { anon: 1 })) k.legacy = 'rkey'
  for (const p of chooseLegacy(pieces, spec.legacy.pieces)) p.legacy = 'rkey'
  // tapes: only tapes with an MP4; at { rkey, uri, cid }, one with both at and atproto
  const lt = chooseLegacy(tapes, spec.legacy.tapes, { anon: 1, extra: (t) => !!t.tape?.mp4 })
  lt.forEach((t, k) => {
    t.legacy = k === 0 ? 'at+atproto' : 'at'
    t.legacyVariant = k === lt.length - 1
  })

  return { users, paintings, moods, pieces, kidlisp, tapes }
}

const SIZES = [32, 48, 64, 80, 96, 128, 160, 192, 256, 300, 320, 400, 480, 512, 600, 640, 720, 768, 800, 1024, 1080, 1280, 1536, 2048]
const SIZE_WEIGHTS = SIZES.map((s) => (s <= 256 ? 6 : s <= 800 ? 3 : s <= 1280 ? 1 : 0.3))
function pickSize(rng: Rng): number {
  return rng.weighted(SIZES, SIZE_WEIGHTS)
}

/** A painting's width and height: square 40 % of the time, else each side drawn on its own. */
function pickDimensions(rng: Rng): { w: number; h: number } {
  const w = pickSize(rng)
  return { w, h: rng.chance(0.4) ? w : pickSize(rng) }
}

/**
 * `n` painting PNGs drawn as the sample draws its paintings (the size mix above, blocky pixel
 * art), without the few fixed sizes the sample forces; for benchmarks. Reproducible from `seed`.
 */
export async function samplePaintingPngs(n: number, seed = 1): Promise<Array<{ w: number; h: number; png: Buffer }>> {
  const rng = new Rng(seed)
  const out: Array<{ w: number; h: number; png: Buffer }> = []
  for (let i = 0; i < n; i++) {
    const { w, h } = pickDimensions(rng)
    out.push({ w, h, png: await renderPainting({ w, h, seed: rng.int(0, 2 ** 31) }) })
  }
  return out
}

function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex')
}

// ───────────────────────────── media ─────────────────────────────

type Rgba = [number, number, number, number]

function palette(rng: Rng, n: number): Rgba[] {
  const out: Rgba[] = []
  for (let i = 0; i < n; i++) out.push([rng.int(0, 255), rng.int(0, 255), rng.int(0, 255), 255])
  return out
}

/** A blocky RGBA grid (`gw` × `gh` cells): noise, stripes, rectangles or a brush walk. */
function pixelGrid(rng: Rng, gw: number, gh: number): Buffer {
  const buf = Buffer.alloc(gw * gh * 4)
  const pal = palette(rng, rng.int(2, 8))
  const bg: Rgba = rng.chance(0.1) ? [0, 0, 0, 0] : pal[0]
  const set = (x: number, y: number, c: Rgba) => {
    if (x < 0 || y < 0 || x >= gw || y >= gh) return
    const o = (y * gw + x) * 4
    buf[o] = c[0]
    buf[o + 1] = c[1]
    buf[o + 2] = c[2]
    buf[o + 3] = c[3]
  }
  for (let y = 0; y < gh; y++) for (let x = 0; x < gw; x++) set(x, y, bg)
  const pattern = rng.int(0, 3)
  if (pattern === 0) {
    for (let y = 0; y < gh; y++) for (let x = 0; x < gw; x++) if (rng.chance(0.6)) set(x, y, rng.pick(pal))
  } else if (pattern === 1) {
    const k = rng.int(0, 3)
    const sw = rng.int(1, Math.max(1, Math.floor(gw / 4)))
    for (let y = 0; y < gh; y++) for (let x = 0; x < gw; x++) set(x, y, pal[Math.floor((x + y * k) / sw) % pal.length])
  } else if (pattern === 2) {
    const n = rng.int(3, 30)
    for (let i = 0; i < n; i++) {
      const x0 = rng.int(0, gw - 1)
      const y0 = rng.int(0, gh - 1)
      const w = rng.int(1, Math.max(1, gw >> 1))
      const h = rng.int(1, Math.max(1, gh >> 1))
      const c = rng.pick(pal)
      for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) set(x, y, c)
    }
  } else {
    let x = rng.int(0, gw - 1)
    let y = rng.int(0, gh - 1)
    const steps = gw * gh
    let c = rng.pick(pal)
    for (let i = 0; i < steps; i++) {
      if (rng.chance(0.02)) c = rng.pick(pal)
      set(x, y, c)
      set(x + 1, y, c)
      x = Math.min(gw - 1, Math.max(0, x + rng.int(-1, 1)))
      y = Math.min(gh - 1, Math.max(0, y + rng.int(-1, 1)))
    }
  }
  return buf
}

/** Cell grid dimensions for a `w`×`h` painting: blocks of 1-32 px, at most ~160 cells a side. */
function gridFor(rng: Rng, w: number, h: number): { gw: number; gh: number } {
  const block = Math.max(rng.pick([1, 2, 4, 8, 16]), Math.ceil(Math.max(w, h) / 160))
  return { gw: Math.max(1, Math.ceil(w / block)), gh: Math.max(1, Math.ceil(h / block)) }
}

async function renderPainting(spec: { w: number; h: number; seed: number }): Promise<Buffer> {
  const rng = new Rng(spec.seed)
  const { gw, gh } = gridFor(rng, spec.w, spec.h)
  const raw = pixelGrid(rng, gw, gh)
  return sharp(raw, { raw: { width: gw, height: gh, channels: 4 } })
    .resize(spec.w, spec.h, { kernel: 'nearest', fit: 'fill' })
    .png()
    .toBuffer()
}

/** A painting recording ZIP: a few small frames plus timing.json. */
async function renderRecordingZip(seed: number): Promise<Buffer> {
  const rng = new Rng(seed)
  const gw = rng.int(16, 64)
  const gh = rng.int(16, 64)
  const full = pixelGrid(rng, gw, gh)
  const n = rng.int(3, 6)
  const files: Array<[string, Buffer]> = []
  const timing: unknown[] = []
  let t = 0
  for (let f = 0; f < n; f++) {
    const rows = Math.ceil(((f + 1) / n) * gh)
    const frame = Buffer.alloc(full.length)
    full.copy(frame, 0, 0, rows * gw * 4)
    const name = `frame-${String(f).padStart(5, '0')}.png`
    files.push([
      name,
      await sharp(frame, { raw: { width: gw, height: gh, channels: 4 } })
        .png()
        .toBuffer(),
    ])
    const duration = rng.int(100, 400)
    timing.push({ frame: f, filename: name, duration, timestamp: t })
    t += duration
  }
  files.push(['timing.json', Buffer.from(JSON.stringify(timing, null, 2))])
  return zipBuffers(files)
}

/** Builds a ZIP in memory (yazl). */
function zipBuffers(files: Array<[string, Buffer]>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const zip = new yazl.ZipFile()
    const fixed = new Date(Date.UTC(2025, 0, 1))
    for (const [name, data] of files) zip.addBuffer(data, name, { mtime: fixed, compress: !name.endsWith('.png') })
    const chunks: Buffer[] = []
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c))
    zip.outputStream.on('error', reject)
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)))
    zip.end()
  })
}

/** A mono 16-bit PCM WAV of `ms` milliseconds: one pentatonic note per frame. */
function synthWav(rng: Rng, durations: number[], rate = 22_050): Buffer {
  const total = durations.reduce((a, b) => a + b, 0)
  const samples = Math.round((total / 1000) * rate)
  const data = Buffer.alloc(samples * 2)
  const scale = [261.63, 293.66, 329.63, 392.0, 440.0, 523.25, 587.33]
  let s = 0
  for (const d of durations) {
    const freq = rng.pick(scale)
    const n = Math.round((d / 1000) * rate)
    for (let i = 0; i < n && s < samples; i++, s++) {
      const env = Math.min(1, i / 200, (n - i) / 400)
      const v = Math.sin((2 * Math.PI * freq * i) / rate) * 0.3 * env
      data.writeInt16LE(Math.round(v * 32767), s * 2)
    }
  }
  const h = Buffer.alloc(44)
  h.write('RIFF', 0, 'ascii')
  h.writeUInt32LE(36 + data.length, 4)
  h.write('WAVE', 8, 'ascii')
  h.write('fmt ', 12, 'ascii')
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20) // PCM
  h.writeUInt16LE(1, 22) // mono
  h.writeUInt32LE(rate, 24)
  h.writeUInt32LE(rate * 2, 28)
  h.writeUInt16LE(2, 32)
  h.writeUInt16LE(16, 34)
  h.write('data', 36, 'ascii')
  h.writeUInt32LE(data.length, 40)
  return Buffer.concat([h, data])
}

interface TapeMedia {
  zip: Buffer
  frames: Buffer[]
  durations: number[]
  wav?: Buffer
  width: number
  height: number
}

/** A tape: 3-20 small frames scaled 6× (nearest), timing.json, metadata.json, maybe a WAV. */
async function renderTape(seed: number, sound: boolean, code: string, slug: string, when: Date): Promise<TapeMedia> {
  const rng = new Rng(seed)
  const [ow, oh] = rng.pick([
    [16, 16],
    [24, 16],
    [32, 18],
    [20, 20],
    [32, 32],
    [40, 24],
  ] as const)
  const n = rng.int(3, 20)
  const bg = palette(rng, 1)[0]
  const fg = palette(rng, 3)
  const frames: Buffer[] = []
  const durations: number[] = []
  let x = rng.int(0, ow - 4)
  let y = rng.int(0, oh - 4)
  for (let f = 0; f < n; f++) {
    const raw = Buffer.alloc(ow * oh * 4)
    for (let i = 0; i < ow * oh; i++) raw.set(bg, i * 4)
    x = (x + rng.int(1, 3)) % ow
    y = (y + rng.int(-1, 1) + oh) % oh
    const c = fg[f % fg.length]
    for (let dy = 0; dy < 4; dy++)
      for (let dx = 0; dx < 4; dx++) {
        const px = (x + dx) % ow
        const py = (y + dy) % oh
        raw.set(c, (py * ow + px) * 4)
      }
    frames.push(
      await sharp(raw, { raw: { width: ow, height: oh, channels: 4 } })
        .resize(ow * TAPE_SCALE, oh * TAPE_SCALE, { kernel: 'nearest' })
        .png()
        .toBuffer(),
    )
    durations.push(rng.int(80, 400))
  }
  const files: Array<[string, Buffer]> = []
  const timing: unknown[] = []
  let t = 0
  frames.forEach((buf, f) => {
    const filename = `frame-${String(f).padStart(5, '0')}.png`
    files.push([filename, buf])
    timing.push({ frame: f, filename, duration: durations[f], timestamp: t })
    t += durations[f]
  })
  const wav = sound ? synthWav(rng, durations) : undefined
  files.push(['timing.json', Buffer.from(JSON.stringify(timing, null, 2))])
  files.push([
    'metadata.json',
    Buffer.from(
      JSON.stringify(
        {
          version: 1,
          code,
          slug,
          piece: rng.pick(['notepat', 'prompt', 'wand', 'line', 'kidlisp', 'starfield']),
          frameCount: n,
          originalWidth: ow,
          originalHeight: oh,
          width: ow * TAPE_SCALE,
          height: oh * TAPE_SCALE,
          scale: TAPE_SCALE,
          totalDuration: t,
          hasSoundtrack: !!wav,
          createdAt: when.toISOString(),
        },
        null,
        2,
      ),
    ),
  ])
  if (wav) files.push(['soundtrack.wav', wav])
  return { zip: await zipBuffers(files), frames, durations, wav, width: ow * TAPE_SCALE, height: oh * TAPE_SCALE }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    p.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000)
    })
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}: ${err}`))))
  })
}

/**
 * AC's tape converter, reproduced: frame rate = frames / soundtrack duration (the soundtrack
 * lasts exactly the sum of frame durations here) or 1000 / mean frame duration; nearest
 * scaling to even dimensions; H.264 yuv420p, AAC 128k with sound, +faststart, ≤30 s.
 */
async function encodeMp4(media: TapeMedia, out: string): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ac-tape-'))
  try {
    await Promise.all(media.frames.map((f, i) => writeFile(path.join(tmp, `frame-${String(i).padStart(5, '0')}.png`), f)))
    if (media.wav) await writeFile(path.join(tmp, 'soundtrack.wav'), media.wav)
    const totalMs = media.durations.reduce((a, b) => a + b, 0)
    const args = ['-y', '-hide_banner', '-loglevel', 'error', '-framerate', `${media.frames.length * 1000}/${totalMs}`, '-i', path.join(tmp, 'frame-%05d.png')]
    if (media.wav) args.push('-i', path.join(tmp, 'soundtrack.wav'))
    args.push('-vf', 'scale=trunc(iw/2)*2:trunc(ih/2)*2:flags=neighbor', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p')
    if (media.wav) args.push('-c:a', 'aac', '-b:a', '128k', '-shortest')
    args.push('-movflags', '+faststart', '-t', '30', out)
    await run('ffmpeg', args)
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

async function writeAt(mediaDir: string, key: string, data: Buffer): Promise<void> {
  const file = path.join(mediaDir, key)
  await mkdir(path.dirname(file), { recursive: true })
  await writeFile(file, data)
}

/** Hard-links `src` to `dst` (same file system), copying when linking is impossible. */
async function linkOrCopy(src: string, dst: string): Promise<void> {
  await mkdir(path.dirname(dst), { recursive: true })
  try {
    await link(src, dst)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return
    await copyFile(src, dst)
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** URL of an object: bucket base + key, each path segment percent-encoded (keys hold `|`). */
function objectUrl(storageUrl: (b: string) => string, key: string): string {
  const [bucket, ...rest] = key.split('/')
  return `${storageUrl(bucket)}/${rest.map(encodeURIComponent).join('/')}`
}

// ───────────────────────────── seeding ─────────────────────────────

const COLLECTIONS = ['users', '@handles', 'paintings', 'moods', 'pieces', 'kidlisp', 'tapes'] as const

/**
 * Seeds AC-shaped sample data: MongoDB documents (database `aesthetic` shapes from
 * docs/data-model.md), media files under `opts.mediaDir`, PDS accounts via `opts.createAccount`,
 * and legacy records on the PDS with their MongoDB back-references.
 *
 * Steps: plan everything from the seed → render media (PNG with sharp, ZIP with yazl, MP4
 * with ffmpeg; `ac` hard-links a pool of a few hundred images) → create accounts (bounded
 * concurrency) → insert documents (`insertMany`, batches of 1,000) and AC's unique indexes →
 * log in once per owner and create legacy records with `com.atproto.repo.createRecord`
 * (`validate: false`, server-assigned rkeys, as AC's scripts did), then `updateOne` the
 * back-reference in one of AC's three shapes.
 *
 * @throws Error when a seeded collection is not empty, ffmpeg fails, an account cannot be
 *   created (even with the user-code fallback), or the PDS refuses a record.
 * @returns counts and example codes; see {@link SampleSummary}.
 */
export async function seedSample(opts: SampleOptions): Promise<SampleSummary> {
  const t0 = Date.now()
  const scale = opts.scale ?? 'small'
  const seed = opts.seed ?? 1
  const spec = SCALES[scale]
  const log = opts.log ?? (() => {})
  const { db, mediaDir } = opts

  for (const c of COLLECTIONS) {
    const n = await db.collection(c).countDocuments({}, { limit: 1 })
    if (n > 0) throw new Error(`seedSample: collection "${c}" in database "${db.databaseName}" is not empty; refusing to seed`)
  }

  // 1. plan
  const rng = new Rng(seed)
  const users = planUsers(rng.fork('users'), spec)
  const plan = planItems(rng.fork('items'), spec, users)
  log(
    `sample(${scale}, seed ${seed}): planned ${users.length} users, ${plan.paintings.length} paintings, ${plan.moods.length} moods, ${plan.pieces.length} pieces, ${plan.kidlisp.length} kidlisp, ${plan.tapes.length} tapes`,
  )

  // 2. media
  await mkdir(mediaDir, { recursive: true })
  const tMedia = Date.now()
  await renderPaintings(plan.paintings, spec, mediaDir)
  log(`sample: painting media in ${Date.now() - tMedia} ms`)
  const tTapes = Date.now()
  await mapLimit(plan.tapes, 2, async (t) => {
    const media = await renderTape(t.tape!.seed, t.tape!.sound, t.doc.code as string, t.doc.slug as string, t.doc.when)
    await writeAt(mediaDir, t.tape!.zipFile, media.zip)
    if (t.tape!.mp4) {
      const code = t.doc.code as string
      const mp4Key = `${SAMPLE_BUCKETS.blobs}/tapes/${code}.mp4`
      const thumbKey = `${SAMPLE_BUCKETS.blobs}/tapes/${code}-thumb.jpg`
      await mkdir(path.join(mediaDir, SAMPLE_BUCKETS.blobs, 'tapes'), { recursive: true })
      await encodeMp4(media, path.join(mediaDir, mp4Key))
      const mid = media.frames[Math.floor(media.frames.length / 2)]
      await writeAt(mediaDir, thumbKey, await sharp(mid).flatten({ background: '#000' }).jpeg({ quality: 85 }).toBuffer())
      Object.assign(t.doc, { mp4Status: 'complete', mp4Url: objectUrl(opts.storageUrl, mp4Key), thumbnailUrl: objectUrl(opts.storageUrl, thumbKey) })
    }
  })
  log(`sample: tape media in ${Date.now() - tTapes} ms`)

  // 3. accounts
  const tAcc = Date.now()
  const guestAccount = await opts.createAccount('art')
  const accountUsers = users.filter((u) => u.hasAccount)
  await mapLimit(accountUsers, spec.accountConcurrency, async (u) => {
    const fitting = u.handle && handleLabel(u.handle).length >= 3 && handleLabel(u.handle).length <= 18
    const name = fitting ? u.handle! : u.code
    try {
      u.account = await opts.createAccount(name)
    } catch (err) {
      if (name === u.code) throw err
      log(`sample: account for "${name}" failed (${(err as Error).message}); using user code ${u.code}`)
      u.account = await opts.createAccount(u.code)
    }
  })
  log(`sample: ${accountUsers.length + 1} PDS accounts in ${Date.now() - tAcc} ms`)

  // 4. MongoDB
  const tDb = Date.now()
  const now = new Date()
  const userDocs: Document[] = [
    { _id: GUEST_USER_ID, code: 'ac21artg', when: new Date(Date.UTC(2021, 0, 1)), atproto: { ...guestAccount, createdAt: now } },
    ...users.map((u) => ({
      _id: u.id,
      code: u.code,
      when: u.when,
      ...(u.account ? { atproto: { did: u.account.did, handle: u.account.handle, password: u.account.password, createdAt: now } } : {}),
    })),
  ]
  const hr = rng.fork('handles')
  const handleDocs = users
    .filter((u) => u.handle)
    .map((u) => {
      const createdAt = randDate(hr, u.when.getTime(), Math.min(T_END, u.when.getTime() + 30 * DAY))
      const updatedAt = hr.chance(0.2) ? randDate(hr, createdAt.getTime(), T_END) : createdAt
      return { _id: u.id, handle: u.handle!, createdAt, updatedAt }
    })
  await db.collection('users').createIndex({ code: 1 }, { unique: true })
  await db.collection('@handles').createIndex({ handle: 1 }, { unique: true })
  await db.collection('kidlisp').createIndex({ code: 1 }, { unique: true })
  await db.collection('kidlisp').createIndex({ hash: 1 }, { unique: true })
  for (const c of ['paintings', 'pieces', 'tapes']) await db.collection(c).createIndex({ code: 1 }, { unique: true })
  for (const c of ['paintings', 'moods', 'pieces', 'kidlisp', 'tapes']) await db.collection(c).createIndex({ user: 1, when: -1 })
  const insert = async (name: string, docs: Document[]) => {
    for (let i = 0; i < docs.length; i += 1000) await db.collection(name).insertMany(docs.slice(i, i + 1000), { ordered: true })
  }
  await insert('users', userDocs)
  await insert('@handles', handleDocs)
  await insert(
    'paintings',
    plan.paintings.map((p) => p.doc),
  )
  await insert(
    'moods',
    plan.moods.map((m) => m.doc),
  )
  await insert(
    'pieces',
    plan.pieces.map((p) => p.doc),
  )
  await insert(
    'kidlisp',
    plan.kidlisp.map((k) => k.doc),
  )
  await insert(
    'tapes',
    plan.tapes.map((t) => t.doc),
  )
  log(`sample: MongoDB inserts in ${Date.now() - tDb} ms`)

  // 5. legacy records
  const tLeg = Date.now()
  const legacyItems = [...plan.paintings, ...plan.moods, ...plan.pieces, ...plan.kidlisp, ...plan.tapes].filter((it) => it.legacy)
  const byOwner = new Map<string, PlanItem[]>()
  for (const it of legacyItems) {
    const key = it.owner?.id ?? GUEST_USER_ID
    byOwner.set(key, [...(byOwner.get(key) ?? []), it])
  }
  await mapLimit([...byOwner.entries()], 4, async ([ownerId, items]) => {
    const account = ownerId === GUEST_USER_ID ? guestAccount : users.find((u) => u.id === ownerId)!.account!
    const agent = new AtpAgent({ service: opts.pdsUrl })
    await agent.login({ identifier: account.did, password: account.password }) // one login per account
    for (const it of items) await writeLegacy(agent, account.did, it, opts, db)
  })
  log(`sample: ${legacyItems.length} legacy records for ${byOwner.size} accounts in ${Date.now() - tLeg} ms`)

  const accounts = users.filter((u) => u.account).map((u) => ({ user: u.id, did: u.account!.did, password: u.account!.password }))
  const newsAndPapers = await seedNewsAndPapers({ db, pdsUrl: opts.pdsUrl, accounts, count: scale === 'ac' ? 200 : 20, rand: rng.fork('news').next })

  const summary = { ...summarize(scale, seed, plan, guestAccount, handleDocs.length), newsAndPapers }
  summary.elapsedMs = Date.now() - t0
  log(`sample: done in ${summary.elapsedMs} ms`)
  return summary
}

async function renderPaintings(paintings: PlanItem[], spec: ScaleSpec, mediaDir: string): Promise<void> {
  const concurrency = Math.max(2, Math.min(4, os.availableParallelism()))
  if (!spec.pngPool) {
    await mapLimit(paintings, concurrency, async (p) => {
      const png = p.png!
      await writeAt(mediaDir, png.file, await renderPainting(png))
      if (png.recording) await writeAt(mediaDir, png.recording.file, await renderRecordingZip(png.seed ^ 0x5bd1e995))
    })
    return
  }
  // pooled: render each pool image once under <mediaDir>/.pool (dotfiles are not served),
  // then hard-link it to every painting that uses it
  const poolDir = path.join(mediaDir, '.pool')
  await mkdir(poolDir, { recursive: true })
  const firstByPool = new Map<number, PlanItem>()
  const firstByZip = new Map<number, PlanItem>()
  for (const p of paintings) {
    if (!firstByPool.has(p.png!.pool)) firstByPool.set(p.png!.pool, p)
    const rec = p.png!.recording
    if (rec && !firstByZip.has(rec.pool)) firstByZip.set(rec.pool, p)
  }
  await mapLimit([...firstByPool.entries()], concurrency, async ([k, p]) => writeFile(path.join(poolDir, `p${k}.png`), await renderPainting(p.png!)))
  await mapLimit([...firstByZip.entries()], concurrency, async ([k, p]) =>
    writeFile(path.join(poolDir, `r${k}.zip`), await renderRecordingZip(p.png!.seed ^ 0x5bd1e995)),
  )
  await mapLimit(paintings, 16, async (p) => {
    const png = p.png!
    await linkOrCopy(path.join(poolDir, `p${png.pool}.png`), path.join(mediaDir, png.file))
    if (png.recording) await linkOrCopy(path.join(poolDir, `r${png.recording.pool}.zip`), path.join(mediaDir, png.recording.file))
  })
}

/** 512×512 `contain` on black, PNG; nearest below 512 on a side, lanczos3 above (AC's rule). */
async function paintingThumbnail(file: string, w: number, h: number): Promise<Buffer> {
  return sharp(await readFile(file))
    .resize(512, 512, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel: w < 512 || h < 512 ? 'nearest' : 'lanczos3' })
    .flatten({ background: '#000' })
    .png()
    .toBuffer()
}

/** Creates one legacy record the way AC's scripts did, then writes the back-reference. */
async function writeLegacy(agent: AtpAgent, did: string, it: PlanItem, opts: SampleOptions, db: Db): Promise<void> {
  const d = it.doc
  const ref = d._id.toHexString()
  const when = d.when.toISOString()
  const collection = SAMPLE_NSIDS[it.kind]
  let record: Record<string, unknown>
  switch (it.kind) {
    case 'painting': {
      const code = d.code as string
      record = {
        $type: collection,
        slug: d.slug,
        code,
        imageUrl: `https://aesthetic.computer/media/paintings/${code}.png`,
        ...(it.png?.recording ? { recordingUrl: `https://aesthetic.computer/media/paintings/${code}.zip` } : {}),
        acUrl: `https://aesthetic.computer/#${code}`,
        when,
        ref,
      }
      if (!it.legacyVariant) {
        const thumb = await paintingThumbnail(path.join(opts.mediaDir, it.png!.file), it.png!.w, it.png!.h)
        record.thumbnail = (await agent.com.atproto.repo.uploadBlob(thumb, { encoding: 'image/png' })).data.blob
      }
      break
    }
    case 'mood':
      record = {
        $type: collection,
        ...(it.legacyText ? { text: d.mood } : { mood: d.mood }),
        when,
        ...(it.legacyMongoId ? { mongoId: ref } : { ref }),
      }
      break
    case 'piece':
      record = { $type: collection, slug: d.slug, when, ref }
      break
    case 'kidlisp':
      record = { $type: collection, source: d.source, code: d.code, acUrl: `https://aesthetic.computer/$${d.code}`, when, ref }
      break
    case 'tape': {
      const code = d.code as string
      const mp4 = await readFile(path.join(opts.mediaDir, SAMPLE_BUCKETS.blobs, 'tapes', `${code}.mp4`))
      const video = (await agent.com.atproto.repo.uploadBlob(mp4, { encoding: 'video/mp4' })).data.blob
      record = { $type: collection, slug: d.slug, code, video, acUrl: `https://aesthetic.computer/!${code}`, when, ref }
      if (it.legacyVariant) {
        const jpg = await readFile(path.join(opts.mediaDir, SAMPLE_BUCKETS.blobs, 'tapes', `${code}-thumb.jpg`))
        record.thumbnail = (await agent.com.atproto.repo.uploadBlob(jpg, { encoding: 'image/jpeg' })).data.blob
        record.zipUrl = objectUrl(opts.storageUrl, it.tape!.zipFile)
      }
      break
    }
  }
  const res = await agent.com.atproto.repo.createRecord({ repo: did, collection, record, validate: false })
  const { uri, cid } = res.data
  const rkey = uri.split('/').pop()!
  let set: Document
  switch (it.legacy) {
    case 'rkey':
      set = { atproto: { rkey } }
      break
    case 'rkey+uri':
      set = { atproto: { rkey, uri } }
      break
    case 'at':
      set = { at: { rkey, uri, cid } }
      break
    default:
      set = { at: { rkey, uri, cid }, atproto: { rkey } }
  }
  Object.assign(d, set)
  await db.collection(collectionOf(it.kind)).updateOne({ _id: d._id }, { $set: set })
}

function collectionOf(kind: SampleKind): string {
  return kind === 'kidlisp' ? 'kidlisp' : `${kind}s`
}

function summarize(scale: 'small' | 'ac', seed: number, plan: Plan, guest: SampleAccount, handles: number): Omit<SampleSummary, 'newsAndPapers'> {
  const kind = (items: PlanItem[]): KindSummary => ({
    total: items.length,
    live: items.filter((i) => !i.removed).length,
    removed: items.filter((i) => i.removed).length,
    anonymous: items.filter((i) => !i.owner).length,
  })
  const all = [...plan.paintings, ...plan.moods, ...plan.pieces, ...plan.kidlisp, ...plan.tapes]
  const legacy = all.filter((i) => i.legacy)
  const byKind = { painting: 0, mood: 0, piece: 0, kidlisp: 0, tape: 0 } as Record<SampleKind, number>
  for (const i of legacy) byKind[i.kind]++
  const liveCodes = (items: PlanItem[], prefix: string, n: number) =>
    items
      .filter((i) => !i.removed)
      .slice(-n)
      .map((i) => `${prefix}${i.doc.code as string}`)
  const counts = new Map<PlanUser, { paintings: number; moods: number; kidlisp: number }>()
  for (const [k, items] of [
    ['paintings', plan.paintings],
    ['moods', plan.moods],
    ['kidlisp', plan.kidlisp],
  ] as const) {
    for (const i of items) {
      if (!i.owner) continue
      const c = counts.get(i.owner) ?? { paintings: 0, moods: 0, kidlisp: 0 }
      c[k]++
      counts.set(i.owner, c)
    }
  }
  let busiest: SampleSummary['busiestUser'] = { id: '', paintings: 0, moods: 0, kidlisp: 0 }
  for (const [u, c] of counts) {
    if (c.paintings + c.moods + c.kidlisp > busiest.paintings + busiest.moods + busiest.kidlisp) busiest = { id: u.id, handle: u.handle, ...c }
  }
  const withCode = (items: PlanItem[]) => items.filter((i) => /[A-Z01]/.test(i.doc.code as string))
  return {
    scale,
    seed,
    elapsedMs: 0,
    users: {
      total: plan.users.length + 1,
      withAccount: plan.users.filter((u) => u.account).length,
      withoutAccount: plan.users.filter((u) => !u.account).length,
      withHandle: plan.users.filter((u) => u.handle).length,
      sotce: plan.users.filter((u) => u.sotce).length,
    },
    handles,
    guest,
    paintings: { ...kind(plan.paintings), withRecording: plan.paintings.filter((p) => p.png?.recording).length },
    moods: kind(plan.moods),
    pieces: kind(plan.pieces),
    kidlisp: {
      ...kind(plan.kidlisp),
      longestSource: Math.max(...plan.kidlisp.map((k) => (k.doc.source as string).length)),
      codesLongerThan3: plan.kidlisp.filter((k) => (k.doc.code as string).length > 3).length,
    },
    tapes: {
      ...kind(plan.tapes),
      complete: plan.tapes.filter((t) => t.doc.mp4Status === 'complete').length,
      pending: plan.tapes.filter((t) => t.doc.mp4Status === 'pending').length,
      withSoundtrack: plan.tapes.filter((t) => t.tape?.sound).length,
    },
    legacy: {
      rkeyOnly: legacy.filter((i) => i.legacy === 'rkey').length,
      rkeyUri: legacy.filter((i) => i.legacy === 'rkey+uri').length,
      at: legacy.filter((i) => i.legacy === 'at' || i.legacy === 'at+atproto').length,
      atAndAtproto: legacy.filter((i) => i.legacy === 'at+atproto').length,
      nukedWithRecord: legacy.filter((i) => i.removed).length,
      byKind,
      moodsWithText: legacy.filter((i) => i.legacyText).length,
      moodsWithMongoId: legacy.filter((i) => i.legacyMongoId).length,
    },
    examples: {
      paintings: [
        ...withCode(plan.paintings)
          .filter((i) => !i.removed)
          .slice(0, 1)
          .map((i) => `#${i.doc.code as string}`),
        ...liveCodes(plan.paintings, '#', 3),
      ],
      kidlisp: liveCodes(plan.kidlisp, '$', 3),
      tapes: liveCodes(plan.tapes, '!', 3),
      handles: plan.users
        .filter((u) => u.handle)
        .slice(0, 4)
        .map((u) => u.handle!),
    },
    busiestUser: busiest,
  }
}

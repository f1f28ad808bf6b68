import crypto from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { KINDS, byKind, collections, type Kind } from '../collections/index.js'
import type { Transaction } from 'kysely'
import type { IndexDb, IndexSchema } from '../db/index.js'

/** Items per kind of an AC-scale index: each kind's AC count with some room (its module's `synthetic.count`). */
export const AC_SCALE = Object.fromEntries(collections.map((c) => [c.kind, c.synthetic.count])) as Record<Kind, number>

export interface SyntheticOptions {
  /** Items per kind (kinds left out: none); default {@link AC_SCALE}. */
  counts?: Partial<Record<Kind, number>>
  /** Actors besides the guest account (AC: 978 users with a PDS account). */
  actors?: number
  /** Origin of every actor's PDS (trusted). */
  pdsUrl?: string
  /** Seed of the pseudo-random generator: the same seed writes the same index. */
  seed?: number
  /** Posts about AC to write for the feed generator (`post`, `post_ref`); default none. */
  posts?: number
}

export interface SyntheticIndex {
  /** Every code written, with its prefix (`#abc`, `$abc`, `!abc`). */
  codes: string[]
  /** Handles of the actors, busiest first; the guest account is `art.at.aesthetic.computer`. */
  handles: string[]
  items: number
  posts: number
}

/** Items per INSERT statement (11 columns: well under SQLite's 32,766 bound parameters). */
const BATCH = 500
const CODE_ALPHABET = 'abcdefghijkmnopqrstuvwxyz23456789ABCDEFGHJKLMNPQRSTUVWXYZ'
const CODE_SPACE = CODE_ALPHABET.length ** 3
const FROM = Date.parse('2023-01-01T00:00:00Z')
const TO = Date.parse('2026-02-01T00:00:00Z')

/**
 * Writes an AC-shaped synthetic index into `db` (migrated, empty) for benchmarks and tests: the
 * guest account plus `actors` users whose item counts follow a Zipf law (a few very busy users,
 * a long tail, as AC's own counts show), records that pass their lexicons (paintings with
 * thumbnail blobs, tapes with video blobs, KidLisp sources of 40-2,000 characters), unique codes
 * per kind and `when`s spread over three years.
 */
export async function writeSyntheticIndex(db: IndexDb, opts: SyntheticOptions = {}): Promise<SyntheticIndex> {
  const random = mulberry32(opts.seed ?? 1)
  const pds = opts.pdsUrl ?? 'https://pds.aesthetic.computer'
  const actorCount = opts.actors ?? 1000
  const now = new Date().toISOString()
  const actors = Array.from({ length: actorCount + 1 }, (_, i) => ({
    did: `did:plc:${(i === 0 ? 'artguest' : `user${i}`).padEnd(24, 'x')}`,
    handle: i === 0 ? 'art.at.aesthetic.computer' : `user${i}.at.aesthetic.computer`,
    pds,
    trusted: 1,
    status: null,
    updatedAt: now,
  }))
  const weights = actors.map((_, i) => 1 / Math.pow(i + 1, 1.1))
  const pick = cumulativePicker(weights, random)
  const codes: string[] = []
  const moodRkeys: string[] = []
  const slugs: string[] = []
  let items = 0
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < actors.length; i += BATCH)
      await trx
        .insertInto('actor')
        .values(actors.slice(i, i + BATCH))
        .execute()
    for (const kind of KINDS) {
      const count = (opts.counts ?? AC_SCALE)[kind] ?? 0
      const col = byKind.get(kind)!
      for (let start = 0; start < count; start += BATCH) {
        const rows = []
        for (let n = start; n < Math.min(count, start + BATCH); n++) {
          let owner = pick()
          if (kind === 'mood' && owner === 0) owner = 1 // moods are never anonymous
          const did = actors[owner].did
          const when = new Date(FROM + random() * (TO - FROM)).toISOString()
          const code = col.codePrefix ? codeOf(n) : null
          if (code) codes.push(col.codePrefix + code)
          const record = recordOf(kind, n, code, when, random)
          const rkey = tid(Date.parse(when), n)
          if (kind === 'mood') moodRkeys.push(rkey)
          const slug = col.urlSlug?.(record) ?? null
          if (slug) slugs.push(slug)
          rows.push({
            uri: `at://${did}/${col.nsid}/${rkey}`,
            did,
            kind,
            rkey,
            cid: cidOf(`${kind} ${n}`),
            rev: rkey,
            code,
            slug,
            sortAt: when,
            indexedAt: now,
            record: JSON.stringify(record),
          })
        }
        await trx.insertInto('item').values(rows).execute()
        items += rows.length
      }
    }
    if (opts.posts) await writeSyntheticPosts(trx, opts.posts, { actors, pick, codes, moodRkeys, slugs, random, now })
  })
  return { codes, handles: actors.map((a) => a.handle), items, posts: opts.posts ?? 0 }
}

/** Untrusted accounts posting about AC besides AC's own users (people elsewhere on the network). */
const FANS = 2000

/**
 * Posts about AC, as the ingest would have kept them: by AC's users (trusted, Zipf-distributed)
 * and by {@link FANS} accounts elsewhere, over the same three years. In ten: three link a painting
 * code and one a painting by slug (AC's share URL), two a KidLisp code, one a tape code, one a
 * mood by rkey, one a news post, and one is an AC user's image without a link (the artists feed
 * only); a third carry an image.
 */
async function writeSyntheticPosts(
  trx: Transaction<IndexSchema>,
  count: number,
  w: { actors: Array<{ did: string }>; pick: () => number; codes: string[]; moodRkeys: string[]; slugs: string[]; random: () => number; now: string },
): Promise<void> {
  const fans = Array.from({ length: FANS }, (_, i) => ({
    did: `did:plc:${`fan${i}`.padEnd(24, 'x')}`,
    handle: `fan${i}.bsky.example`,
    pds: 'https://bsky.example',
    trusted: 0,
    status: null,
    updatedAt: w.now,
  }))
  for (let i = 0; i < fans.length; i += BATCH)
    await trx
      .insertInto('actor')
      .values(fans.slice(i, i + BATCH))
      .execute()
  const byPrefix = (p: string) => w.codes.filter((c) => c.startsWith(p)).map((c) => c.slice(1))
  const targets = { painting: byPrefix('#'), kidlisp: byPrefix('$'), tape: byPrefix('!') }
  const choose = <T>(list: T[]) => list[Math.floor(w.random() * list.length)]
  for (let start = 0; start < count; start += BATCH) {
    const posts = []
    const refs = []
    for (let n = start; n < Math.min(count, start + BATCH); n++) {
      const slot = n % 10
      const did = slot === 9 || w.random() < 0.5 ? w.actors[w.pick()].did : choose(fans).did
      const sortAt = new Date(FROM + w.random() * (TO - FROM)).toISOString()
      const uri = `at://${did}/app.bsky.feed.post/${tid(Date.parse(sortAt), n)}`
      const ref =
        slot < 3
          ? { kind: 'painting', via: 'code', key: choose(targets.painting) }
          : slot === 3
            ? { kind: 'painting', via: 'slug', key: choose(w.slugs) }
            : slot < 6
              ? { kind: 'kidlisp', via: 'code', key: choose(targets.kidlisp) }
              : slot === 6
                ? { kind: 'tape', via: 'code', key: choose(targets.tape) }
                : slot === 7
                  ? { kind: 'mood', via: 'rkey', key: choose(w.moodRkeys) }
                  : slot === 8
                    ? { kind: 'news', via: 'code', key: `n${n.toString(36)}`.slice(0, 10) }
                    : undefined
      posts.push({
        uri,
        did,
        cid: cidOf(uri),
        rev: tid(Date.parse(sortAt), n),
        sortAt,
        indexedAt: w.now,
        about: ref ? 1 : 0,
        media: slot === 9 || w.random() < 0.33 ? 'image' : null,
      })
      if (ref) refs.push({ post: uri, ...ref, sortAt, did })
    }
    await trx.insertInto('post').values(posts).execute()
    if (refs.length) await trx.insertInto('post_ref').values(refs).execute()
  }
}

/**
 * Writes the heaviest records the lexicons allow, as an attacker would publish them: `items`
 * KidLisp records of 50,000 emoji each (200,000 bytes, the lexicon's `maxGraphemes` and
 * `maxLength`) by one untrusted actor, dated before every item of {@link writeSyntheticIndex}
 * (so they stay off the first pages of getFeed). Resolves to the actor's handle: its author feed
 * is a page of huge records.
 */
export async function writeHugeKidlisp(db: IndexDb, items = 100): Promise<string> {
  const did = `did:plc:${'hostile'.padEnd(24, 'x')}`
  const handle = 'hostile.example'
  const now = new Date().toISOString()
  await db.insertInto('actor').values({ did, handle, pds: 'https://pds.example', trusted: 0, status: null, updatedAt: now }).execute()
  const col = byKind.get('kidlisp')!
  for (let n = 0; n < items; n++) {
    const when = new Date(FROM - (n + 1) * 60_000).toISOString()
    const code = `huge${n}`
    const record = { $type: col.nsid, when, ref: `huge${n}`, code, source: '🎨'.repeat(50_000), acUrl: `https://aesthetic.computer/$${code}` }
    const rkey = tid(Date.parse(when), n)
    await db
      .insertInto('item')
      .values({
        uri: `at://${did}/${col.nsid}/${rkey}`,
        did,
        kind: 'kidlisp',
        rkey,
        cid: cidOf(`huge ${n}`),
        rev: rkey,
        code,
        sortAt: when,
        indexedAt: now,
        record: JSON.stringify(record),
      })
      .execute()
  }
  return handle
}

function recordOf(kind: Kind, n: number, code: string | null, when: string, random: () => number): Record<string, unknown> {
  const col = byKind.get(kind)!
  const base = { $type: col.nsid, when, ref: crypto.createHash('md5').update(`${kind}${n}`).digest('hex').slice(0, 24) }
  const blob = (mimeType: string, size: number) => ({ $type: 'blob' as const, ref: { $link: cidOf(`${kind} ${n} ${mimeType}`, 0x55) }, mimeType, size })
  return col.synthetic.record(n, { base, code, random, blob })
}

/**
 * A code unique within its kind: `n` scrambled by a bijection modulo 57³ (7919 is prime and
 * 57³ = 3³·19³), written as 3 characters of AC's mixed-case alphabet; `n` < 185,193.
 */
function codeOf(n: number): string {
  let v = (n * 7919) % CODE_SPACE
  let out = ''
  for (let i = 0; i < 3; i++) {
    out += CODE_ALPHABET[v % CODE_ALPHABET.length]
    v = Math.floor(v / CODE_ALPHABET.length)
  }
  return out
}

/** A CIDv1 (sha-256) of `text`: dag-cbor (0x71) for records, raw (0x55) for blobs. */
function cidOf(text: string, codec = 0x71): string {
  return CID.create(1, codec, Digest.create(0x12, crypto.createHash('sha256').update(text).digest())).toString()
}

/** An ATProto TID (13 base32-sortable characters) from a time in ms and a clock id. */
function tid(ms: number, clock: number): string {
  const S32 = '234567abcdefghijklmnopqrstuvwxyz'
  let v = (BigInt(ms) * 1000n + BigInt(clock % 1000)) * 1024n + BigInt(clock % 1024)
  let out = ''
  for (let i = 0; i < 13; i++) {
    out = S32[Number(v & 31n)] + out
    v >>= 5n
  }
  return out
}

function cumulativePicker(weights: number[], random: () => number): () => number {
  const total = weights.reduce((a, b) => a + b, 0)
  let acc = 0
  const cumulative = weights.map((w) => (acc += w / total))
  return () => {
    const r = random()
    let lo = 0
    let hi = cumulative.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid] < r) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** Small seeded PRNG (mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

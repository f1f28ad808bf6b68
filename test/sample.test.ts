/**
 * Seeds the `small` sample into a real PDS+PLC (dev-env), a MongoDB (startMongo) and the
 * media server, then checks the data against docs/data-model.md.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import { TestNetworkNoAppView } from '@atproto/dev-env'
import { MongoClient, type Db, type Document } from 'mongodb'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startMediaServer } from '../src/dev/media-server.js'
import { startMongo } from '../src/dev/mongo-server.js'
import { GUEST_USER_ID, SAMPLE_BUCKETS, SAMPLE_NSIDS, seedSample, type SampleAccount, type SampleSummary } from '../src/dev/sample.js'

type Kind = keyof typeof SAMPLE_NSIDS
const COLL: Record<Kind, string> = { painting: 'paintings', mood: 'moods', piece: 'pieces', kidlisp: 'kidlisp', tape: 'tapes' }

let network: TestNetworkNoAppView
let mongo: Awaited<ReturnType<typeof startMongo>>
let client: MongoClient
let db: Db
let media: Awaited<ReturnType<typeof startMediaServer>>
let mediaDir: string
let summary: SampleSummary
let seedMs = 0

/** PDS handle for a local name: lowercase, `.`/`_` → `-`, 3-18 characters, under `.test`. */
async function createAccount(name: string): Promise<SampleAccount> {
  const label = name
    .toLowerCase()
    .replace(/[._]/g, '-')
    .replace(/[^a-z0-9-]/g, '')
    .replace(/^-+|-+$/g, '')
  if (label.length < 3 || label.length > 18) throw new Error(`"${name}" does not fit a handle (3-18 characters)`)
  const handle = `${label}.test`
  const password = `pw-${randomUUID()}`
  const res = await network.pds.getAgent().createAccount({ email: `${label}@example.com`, handle, password })
  return { did: res.data.did, handle: res.data.handle, password }
}

function objectUrl(bucket: string, key: string): string {
  return `${media.storageUrl(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`
}

beforeAll(async () => {
  network = await TestNetworkNoAppView.create({})
  mongo = await startMongo({ dbName: process.env.MONGODB_URI ? `aesthetic_sample_${Date.now()}` : 'aesthetic' })
  client = new MongoClient(mongo.uri)
  await client.connect()
  db = client.db(mongo.dbName)
  mediaDir = await mkdtemp(path.join(os.tmpdir(), 'ac-media-'))
  media = await startMediaServer({ dir: mediaDir })
  const t0 = Date.now()
  summary = await seedSample({
    db,
    mediaDir,
    storageUrl: media.storageUrl,
    pdsUrl: network.pds.url,
    createAccount,
    scale: 'small',
    seed: 7,
    log: (m) => console.log(m),
  })
  seedMs = Date.now() - t0
  console.log(`seedSample(small) took ${seedMs} ms\n${JSON.stringify(summary, null, 2)}`)
})

afterAll(async () => {
  await media?.close()
  if (mongo?.external) await db?.dropDatabase().catch(() => {})
  await client?.close()
  await mongo?.stop()
  await network?.close()
  if (mediaDir) await rm(mediaDir, { recursive: true, force: true })
})

describe('seedSample(small)', () => {
  it('runs well under a minute', () => {
    expect(seedMs).toBeLessThan(60_000)
  })

  it('has the expected counts by kind', async () => {
    const count = (c: string, q: Document = {}) => db.collection(c).countDocuments(q)
    expect(await count('users')).toBe(25)
    expect(await count('users', { atproto: { $exists: true } })).toBe(21)
    expect(summary.users).toMatchObject({ total: 25, withAccount: 20, withoutAccount: 4 })
    expect(await count('@handles')).toBe(summary.handles)
    expect(summary.handles).toBeGreaterThan(10)
    expect(summary.handles).toBeLessThan(24)
    expect(await count('@handles', { _id: GUEST_USER_ID })).toBe(0)
    expect(await count('users', { _id: { $regex: '^sotce-auth0\\|' } })).toBeGreaterThanOrEqual(2)

    const expected: Record<Kind, number> = { painting: 60, mood: 50, piece: 15, kidlisp: 60, tape: 12 }
    for (const kind of Object.keys(expected) as Kind[]) {
      const s = summary[COLL[kind] as 'paintings']
      expect(await count(COLL[kind]), kind).toBe(expected[kind])
      expect(s.total).toBe(expected[kind])
      const removedField = kind === 'mood' ? 'deleted' : 'nuked'
      expect(await count(COLL[kind], { [removedField]: true }), kind).toBe(s.removed)
      expect(s.removed, kind).toBeGreaterThan(0)
      expect(await count(COLL[kind], { user: { $exists: false } }), kind).toBe(s.anonymous)
      if (kind === 'mood') expect(s.anonymous).toBe(0)
      else expect(s.anonymous, kind).toBeGreaterThan(0)
    }
  })

  it('writes documents in AC shapes (anonymous ones have no user field)', async () => {
    const users = await db.collection('users').find().toArray()
    const ids = new Set(users.map((u) => u._id as unknown as string))
    for (const u of users) {
      if (u._id === (GUEST_USER_ID as unknown)) continue
      expect(u._id).toMatch(/^(sotce-)?auth0\|[0-9a-f]{24}$/)
      expect(u.code).toMatch(/^ac\d\d[a-z]{4}$/)
      expect(u.when).toBeInstanceOf(Date)
      if (u.atproto) expect(Object.keys(u.atproto).sort()).toEqual(['createdAt', 'did', 'handle', 'password'])
    }
    for (const h of await db.collection('@handles').find().toArray()) {
      expect(ids.has(h._id as unknown as string)).toBe(true)
      expect(h.handle).toMatch(/^[a-z0-9]+([._][a-z0-9]+)*$/)
    }
    for (const kind of Object.keys(COLL) as Kind[]) {
      for (const d of await db.collection(COLL[kind]).find().toArray()) {
        expect(d.when).toBeInstanceOf(Date)
        if ('user' in d) {
          expect(typeof d.user).toBe('string')
          expect(ids.has(d.user)).toBe(true)
        }
        if (kind !== 'mood') expect(d.code).toMatch(/^[A-Za-z0-9]{3,10}$/)
        if (kind === 'painting' || kind === 'piece' || kind === 'tape') {
          expect(d.bucket).toBe('user' in d ? SAMPLE_BUCKETS.user : SAMPLE_BUCKETS.guest)
        }
      }
    }
    const kidlisp = await db.collection('kidlisp').find().toArray()
    for (const k of kidlisp) {
      expect(k.hash).toBe(createHash('sha256').update(k.source).digest('hex'))
      expect(k.code.startsWith('$')).toBe(false)
    }
    expect(new Set(kidlisp.map((k) => k.code)).size).toBe(kidlisp.length)
    expect(kidlisp.some((k) => k.code.length > 3)).toBe(true)
    expect(kidlisp.some((k) => k.source.length > 10_000)).toBe(true)
    const paintings = await db.collection('paintings').find().toArray()
    expect(paintings.some((p) => /[A-Z01]/.test(p.code))).toBe(true)
    expect(paintings.some((p) => /^\d{4}\.\d{1,2}\.\d{1,2}\.\d{1,2}\.\d\d\.\d\d\.\d{3}$/.test(p.slug))).toBe(true)
    expect(paintings.some((p) => !p.user && /^[A-Za-z0-9_-]{8}$/.test(p.slug))).toBe(true)
    const moods = await db.collection('moods').find().toArray()
    expect(moods.some((m) => m.mood.length > 1_000 && m.mood.length <= 4_000)).toBe(true)
    expect(moods.some((m) => /\p{Extended_Pictographic}/u.test(m.mood))).toBe(true)
  })

  it('serves every live painting PNG (32..2048 px) and the recording ZIPs', async () => {
    const paintings = await db
      .collection('paintings')
      .find({ nuked: { $ne: true } })
      .toArray()
    const dims = new Set<string>()
    for (const p of paintings) {
      const [imageSlug, recordingSlug] = (p.slug as string).split(':')
      const dir = p.user ? `${p.user}/painting/` : ''
      const res = await fetch(objectUrl(p.bucket, `${dir}${imageSlug}.png`))
      expect(res.status, p.slug).toBe(200)
      expect(res.headers.get('content-type')).toBe('image/png')
      const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata()
      for (const v of [meta.width, meta.height]) {
        expect(v).toBeGreaterThanOrEqual(32)
        expect(v).toBeLessThanOrEqual(2048)
      }
      dims.add(`${meta.width}x${meta.height}`)
      if (recordingSlug) {
        const zip = await fetch(objectUrl(p.bucket, `${dir}${recordingSlug}.zip`), { method: 'HEAD' })
        expect(zip.status).toBe(200)
        expect(zip.headers.get('content-type')).toBe('application/zip')
      }
    }
    expect(paintings.filter((p) => p.slug.includes(':')).length).toBeGreaterThan(0)
    expect([...dims].some((d) => d.split('x')[0] !== d.split('x')[1])).toBe(true)
    expect(dims.size).toBeGreaterThan(5)
    expect((await fetch(`${media.url}/${SAMPLE_BUCKETS.user}/nope.png`)).status).toBe(404)
  })

  it('serves tape ZIPs, and MP4s + thumbnails for complete tapes', async () => {
    const tapes = await db.collection('tapes').find().toArray()
    expect(tapes.some((t) => t.mp4Status === 'complete')).toBe(true)
    expect(tapes.some((t) => t.mp4Status === 'pending')).toBe(true)
    for (const t of tapes) {
      expect(typeof t.nuked).toBe('boolean')
      const zip = await fetch(objectUrl(t.bucket, `${t.user ? `${t.user}/` : ''}${t.slug}.zip`))
      expect(zip.status).toBe(200)
      const bytes = Buffer.from(await zip.arrayBuffer())
      expect(bytes.subarray(0, 2).toString()).toBe('PK')
      expect(bytes.includes('frame-00000.png')).toBe(true)
      expect(bytes.includes('timing.json')).toBe(true)
      expect(bytes.includes('metadata.json')).toBe(true)
      if (t.mp4Status === 'complete') {
        expect(t.mp4Url).toBe(objectUrl(SAMPLE_BUCKETS.blobs, `tapes/${t.code}.mp4`))
        const mp4 = await fetch(t.mp4Url)
        expect(mp4.status).toBe(200)
        expect(mp4.headers.get('content-type')).toBe('video/mp4')
        const head = Buffer.from(await mp4.arrayBuffer())
        expect(head.subarray(4, 8).toString()).toBe('ftyp')
        const thumb = await fetch(t.thumbnailUrl)
        expect(thumb.status).toBe(200)
        expect(thumb.headers.get('content-type')).toBe('image/jpeg')
      } else {
        expect(t.mp4Status).toBe('pending')
        expect(t.mp4Url).toBeUndefined()
      }
    }
  })

  it('has legacy back-references in all three shapes, each pointing at a record on the PDS', async () => {
    const users = new Map((await db.collection('users').find().toArray()).map((u) => [u._id as unknown as string, u]))
    const agent = new AtpAgent({ service: network.pds.url })
    const shapes = { rkeyOnly: 0, rkeyUri: 0, at: 0, atAndAtproto: 0 }
    let textMoods = 0
    let mongoIdMoods = 0
    let acUrls = 0
    let nukedWithRecord = 0
    for (const kind of Object.keys(COLL) as Kind[]) {
      const docs = await db
        .collection(COLL[kind])
        .find({ $or: [{ atproto: { $exists: true } }, { at: { $exists: true } }] })
        .toArray()
      expect(docs.length, kind).toBeGreaterThan(0)
      for (const d of docs) {
        const did = users.get(d.user ?? GUEST_USER_ID)!.atproto.did as string
        const collection = SAMPLE_NSIDS[kind]
        const refs: Array<{ rkey: string; uri?: string; cid?: string }> = []
        if (d.at) {
          refs.push(d.at)
          shapes.at++
          if (d.atproto) shapes.atAndAtproto++
          expect(kind).toBe('tape')
          expect(Object.keys(d.at).sort()).toEqual(['cid', 'rkey', 'uri'])
        }
        if (d.atproto) {
          refs.push(d.atproto)
          if (!d.at) shapes[d.atproto.uri ? 'rkeyUri' : 'rkeyOnly']++
        }
        if (d.nuked || d.deleted) nukedWithRecord++
        for (const r of refs) {
          const expectedUri = `at://${did}/${collection}/${r.rkey}`
          if (r.uri) expect(r.uri).toBe(expectedUri)
          const res = await agent.com.atproto.repo.getRecord({ repo: did, collection, rkey: r.rkey })
          expect(res.data.uri).toBe(expectedUri)
          if (r.cid) expect(res.data.cid).toBe(r.cid)
          const v = res.data.value as Record<string, unknown>
          expect(v.$type).toBe(collection)
          expect(v.ref ?? v.mongoId).toBe(d._id.toHexString())
          expect(v.when).toBe(d.when.toISOString())
          if (v.acUrl) acUrls++
          if (kind === 'mood') {
            if ('text' in v) textMoods++
            if ('mongoId' in v) mongoIdMoods++
            expect(v.mood ?? v.text).toBe(d.mood)
          }
          if (kind === 'tape') expect((v.video as { mimeType: string }).mimeType).toBe('video/mp4')
          if (kind === 'painting' || kind === 'kidlisp' || kind === 'tape') expect(v.code).toBe(d.code)
        }
      }
    }
    expect(shapes.rkeyOnly).toBeGreaterThan(0)
    expect(shapes.rkeyUri).toBeGreaterThan(0)
    expect(shapes.at).toBeGreaterThan(0)
    expect(shapes.atAndAtproto).toBeGreaterThan(0)
    expect(shapes).toEqual({
      rkeyOnly: summary.legacy.rkeyOnly,
      rkeyUri: summary.legacy.rkeyUri,
      at: summary.legacy.at,
      atAndAtproto: summary.legacy.atAndAtproto,
    })
    expect(textMoods).toBeGreaterThan(0)
    expect(mongoIdMoods).toBe(1)
    expect(acUrls).toBeGreaterThan(0)
    expect(nukedWithRecord).toBe(1)
    // the painting with the rkey-only shape exists too
    expect(await db.collection('paintings').countDocuments({ 'atproto.rkey': { $exists: true }, 'atproto.uri': { $exists: false } })).toBeGreaterThan(0)
  })

  it('gives live example codes with their prefixes', async () => {
    expect(summary.examples.paintings.length).toBeGreaterThan(0)
    for (const c of summary.examples.paintings) expect(await db.collection('paintings').countDocuments({ code: c.slice(1), nuked: { $ne: true } })).toBe(1)
    for (const c of summary.examples.kidlisp) expect(c.startsWith('$')).toBe(true)
    for (const c of summary.examples.tapes) expect(c.startsWith('!')).toBe(true)
  })
})

import { randomBytes } from 'node:crypto'
import { AtpAgent } from '@atproto/api'
import { ObjectId } from 'mongodb'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { runAudit, runBackfill, runWipe } from '../src/services.js'
import { RepoClient } from '../src/writer/repo.js'
import { deterministicRkey } from '../src/writer/rkey.js'
import { makeThumbnail } from '../src/writer/thumbnail.js'
import { addGuest, addPainting, addUser, bombPng, doc, listRepo, pixelArt, putMedia, type AcUser } from './support/ac.js'
import { startCountingProxy } from './support/counting-proxy.js'
import { startStack, type Stack } from './support/stack.js'

const PAINTING = 'computer.aesthetic.painting'
const MOOD = 'computer.aesthetic.mood'

describe('writer', () => {
  let stack: Stack
  let ana: AcUser
  let guest: AcUser
  let agent: AtpAgent

  /** Creates a record the way AC's scripts did: server-assigned key, no validation. */
  const legacyRecord = async (collection: string, record: Record<string, unknown>) =>
    (await agent.com.atproto.repo.createRecord({ repo: ana.did, collection, record: { $type: collection, ...record }, validate: false })).data

  beforeAll(async () => {
    stack = await startStack()
    ana = await addUser(stack, 'ana')
    guest = await addGuest(stack)
    agent = new AtpAgent({ service: stack.net.pdsUrl })
    await agent.login({ identifier: ana.did, password: ana.password })
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('adopts the records AC made earlier, through each back-reference shape or ref, and never duplicates', async () => {
    const byBackref = await addPainting(stack, ana, { code: 'Ad1', png: await pixelArt(64) })
    const legacy = await legacyRecord(PAINTING, {
      slug: byBackref.slug,
      code: 'Ad1',
      imageUrl: 'https://aesthetic.computer/media/paintings/Ad1.png',
      when: byBackref.when.toISOString(),
      ref: byBackref._id.toHexString(),
    })
    const rkey = legacy.uri.split('/').pop()!
    await stack.mongo.collection('paintings').updateOne({ _id: byBackref._id }, { $set: { atproto: { rkey, uri: legacy.uri, syncedBy: 'ac' } } })

    const moodId = new ObjectId()
    const when = new Date('2024-05-06T07:08:09Z')
    await stack.mongo.collection('moods').insertOne({ _id: moodId, mood: 'rainy', when, user: ana.sub })
    const bulk = await legacyRecord(MOOD, { text: 'rainy', when: when.toISOString(), ref: moodId.toHexString() })
    const dup = await legacyRecord(MOOD, { text: 'rainy', when: when.toISOString(), ref: moodId.toHexString() })

    const report = await runBackfill(stack.cfg, stack.log)
    expect(report.problems).toEqual([])
    const paintings = await listRepo(stack, ana.did, PAINTING)
    expect([...paintings.keys()]).toEqual([rkey])
    expect(paintings.get(rkey)!.value).toMatchObject({ code: 'Ad1', acUrl: 'https://aesthetic.computer/#Ad1', thumbnail: { mimeType: 'image/png' } })
    const moods = await listRepo(stack, ana.did, MOOD)
    expect(moods.size).toBe(1)
    const kept = [bulk.uri, dup.uri].sort()[0].split('/').pop()!
    expect(moods.get(kept)!.value).toEqual({ $type: MOOD, mood: 'rainy', when: when.toISOString(), ref: moodId.toHexString() })

    // Back-references are written with $set on sub-fields: AC's own fields survive.
    const painting = await doc(stack.mongo, 'paintings', byBackref._id)
    expect(painting!.atproto).toEqual({ rkey, uri: legacy.uri, cid: paintings.get(rkey)!.cid, syncedBy: 'ac' })
    expect((await doc(stack.mongo, 'moods', moodId))!.atproto).toEqual({ rkey: kept, uri: moods.get(kept)!.uri, cid: moods.get(kept)!.cid })
  })

  it('puts new items at their deterministic record keys and changes nothing on a second run', async () => {
    const fresh = await addPainting(stack, ana, { code: 'Nw1', png: await pixelArt(300) })
    await runBackfill(stack.cfg, stack.log)
    expect((await listRepo(stack, ana.did, PAINTING)).has(deterministicRkey(fresh._id.toHexString(), fresh.when))).toBe(true)
    const again = await runBackfill(stack.cfg, stack.log)
    expect(again.changes).toEqual([])
    expect(again.backrefsWritten).toBe(0)
  })

  it('logs in only to the repos it writes to: none on a second run, none for an audit', async () => {
    const proxy = await startCountingProxy(stack.net.pdsUrl)
    try {
      const cfg = { ...stack.cfg, PDS_URL: proxy.url }
      await addUser(stack, 'idle') // a PDS account with nothing to mirror
      await stack.mongo.collection('moods').insertOne({ _id: new ObjectId(), mood: 'to write', when: new Date(), user: ana.sub })
      const first = await runBackfill(cfg, stack.log)
      expect(first.problems).toEqual([])
      expect(first.changes.some((c) => c.kind === 'mood' && c.action === 'create')).toBe(true)
      expect(Object.fromEntries(proxy.logins)).toEqual({ [ana.did]: 1 })
      expect(first.repos).toBeGreaterThanOrEqual(3) // ana, idle and the guest were all compared
      proxy.logins.clear()
      expect((await runBackfill(cfg, stack.log)).changes).toEqual([])
      expect((await runAudit(cfg, stack.log, {})).clean).toBe(true)
      expect(proxy.logins.size).toBe(0)
    } finally {
      await proxy.close()
    }
  })

  it('updates changed items in place, deletes nuked ones and brings them back at the same key', async () => {
    const moodId = new ObjectId()
    await stack.mongo.collection('moods').insertOne({ _id: moodId, mood: 'first', when: new Date('2024-07-01T00:00:00Z'), user: ana.sub })
    await runBackfill(stack.cfg, stack.log)
    const rkey = (await doc(stack.mongo, 'moods', moodId))!.atproto.rkey

    await stack.mongo.collection('moods').updateOne({ _id: moodId }, { $set: { mood: 'edited' } })
    const edit = await runBackfill(stack.cfg, stack.log)
    expect(edit.counts.mood.update).toBe(1)
    expect((await listRepo(stack, ana.did, MOOD)).get(rkey)!.value.mood).toBe('edited')

    await stack.mongo.collection('moods').updateOne({ _id: moodId }, { $set: { deleted: true } })
    const del = await runBackfill(stack.cfg, stack.log)
    expect(del.counts.mood.delete).toBe(1)
    expect((await listRepo(stack, ana.did, MOOD)).has(rkey)).toBe(false)
    expect((await doc(stack.mongo, 'moods', moodId))!.atproto).toEqual({ rkey })

    await stack.mongo.collection('moods').updateOne({ _id: moodId }, { $unset: { deleted: '' } })
    const back = await runBackfill(stack.cfg, stack.log)
    expect(back.counts.mood.create).toBe(1)
    expect((await listRepo(stack, ana.did, MOOD)).get(rkey)!.value.mood).toBe('edited')
  })

  it('detects recordings with HEAD and makes 512×512 thumbnails: nearest-neighbour up, within maxSize', async () => {
    const p = await addPainting(stack, ana, { code: 'Rc1', slug: '2024.2.2.2.2.2.222:rec123', png: await pixelArt(32, 3) })
    await putMedia(stack, 'user-aesthetic-computer', `${ana.sub}/painting/rec123.zip`, 'PK')
    const noZip = await addPainting(stack, ana, { code: 'Rc2', slug: '2024.2.2.2.2.2.333:gone', png: await pixelArt(2048, 4) })
    await runBackfill(stack.cfg, stack.log)
    const records = [...(await listRepo(stack, ana.did, PAINTING)).values()]
    const withZip = records.find((r) => r.value.ref === p._id.toHexString())!
    expect(withZip.value.recordingUrl).toBe('https://aesthetic.computer/media/paintings/Rc1.zip')
    expect(records.find((r) => r.value.ref === noZip._id.toHexString())!.value.recordingUrl).toBeUndefined()

    const blob = await stack.net.network.pds.getAgent().com.atproto.sync.getBlob({ did: ana.did, cid: String(withZip.value.thumbnail.ref) })
    const meta = await sharp(blob.data).metadata()
    expect([meta.width, meta.height, meta.format]).toEqual([512, 512, 'png'])
    expect(blob.data.length).toBeLessThanOrEqual(1_048_576)
    // Nearest-neighbour: scaling a 32 px source up 16× invents no colour (lanczos3 would blend).
    const colours = async (png: Uint8Array) => {
      const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true })
      const set = new Set<number>()
      for (let i = 0; i < data.length; i += info.channels) set.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2])
      return set
    }
    const source = await colours(await pixelArt(32, 3))
    const thumb = await colours(blob.data)
    expect([...thumb].filter((c) => c !== 0 && !source.has(c))).toEqual([])
  })

  it('reports each bad document or file by id and reason, and loses nothing else', async () => {
    const bad: Record<string, { collection: string; doc: Record<string, unknown>; reason: RegExp }> = {
      wrongType: { collection: 'paintings', doc: { code: 42, slug: 's', when: new Date(), user: ana.sub }, reason: /^code: / },
      oversized: { collection: 'paintings', doc: { code: 'Ov1', slug: 'x'.repeat(200), when: new Date(), user: ana.sub }, reason: /^slug: / },
      badDate: {
        collection: 'kidlisp',
        doc: { code: 'bd1', source: '(wipe)', when: new Date('nope'), user: ana.sub },
        reason: /^when: is (not a valid date|out of range)/,
      },
      stringDate: { collection: 'kidlisp', doc: { code: 'bd2', source: '(wipe)', when: 'yesterday', user: ana.sub }, reason: /^when: is not a valid date/ },
      noOwner: { collection: 'moods', doc: { mood: 'who?', when: new Date() }, reason: /^user: is missing/ },
      longMood: { collection: 'moods', doc: { mood: '🌧'.repeat(5001), when: new Date(), user: ana.sub }, reason: /^mood: is longer than 5,000/ },
      hostileBucket: {
        collection: 'paintings',
        doc: { code: 'Hb1', slug: 's', bucket: '@evil.example', when: new Date(), user: ana.sub },
        reason: /^bucket: /,
      },
    }
    const ids: Record<string, ObjectId> = {}
    for (const [name, b] of Object.entries(bad)) {
      ids[name] = new ObjectId()
      await stack.mongo.collection(b.collection).insertOne({ _id: ids[name], ...b.doc })
    }
    const unknown = await addPainting(stack, { ...ana, sub: 'auth0|nobody' }, { code: 'Uk1', png: await pixelArt(40) })
    const noAccount = 'auth0|noaccount'
    await stack.mongo.collection('users').insertOne({ _id: noAccount as never, code: 'acnoacc', when: new Date() })
    const accountless = await addPainting(stack, { ...ana, sub: noAccount }, { code: 'Na1', png: await pixelArt(40) })
    const hostileSlug = await addPainting(stack, ana, { code: 'Hs1', slug: '../../../etc/passwd' })
    const escape = await addPainting(stack, ana, { code: 'Hs2', slug: '@evil.example' })
    const truncated = await addPainting(stack, ana, { code: 'Tr1', png: (await pixelArt(256)).subarray(0, 300) })
    const notImage = await addPainting(stack, ana, { code: 'Ni1', png: new TextEncoder().encode('<html>not a png</html>') })
    const bomb = await addPainting(stack, ana, { code: 'Bm1', png: bombPng(30000, 30000) })
    const good = await addPainting(stack, ana, { code: 'Gd1', png: await pixelArt(128) })

    const report = await runBackfill(stack.cfg, stack.log)
    const problem = (id: ObjectId) => report.problems.filter((p) => p.id === id.toHexString())
    for (const [name, b] of Object.entries(bad))
      expect(problem(ids[name]), name).toEqual([expect.objectContaining({ action: 'invalid', reason: expect.stringMatching(b.reason) })])
    expect(problem(unknown._id)).toEqual([
      expect.objectContaining({ action: 'skipped', reason: 'owner has no PDS account', repo: 'auth0|nobody', private: true }),
    ])
    expect(problem(accountless._id)).toEqual([
      expect.objectContaining({ action: 'skipped', reason: 'owner has no PDS account', repo: noAccount, private: true }),
    ])
    // A thumbnail that cannot be made is a warning: the item is still created, and counted once.
    for (const p of [hostileSlug, escape])
      expect(problem(p._id), p.slug).toEqual([
        expect.objectContaining({ action: 'warning', reason: expect.stringMatching(/thumbnail left out: GET .*HTTP 404/) }),
      ])
    expect(problem(truncated._id)).toEqual([expect.objectContaining({ action: 'warning', reason: expect.stringMatching(/thumbnail left out/) })])
    expect(problem(notImage._id)).toEqual([
      expect.objectContaining({ action: 'warning', reason: expect.stringMatching(/thumbnail left out: .*unsupported image format/) }),
    ])
    expect(problem(bomb._id)).toEqual([expect.objectContaining({ action: 'warning', reason: expect.stringMatching(/thumbnail left out: .*pixel limit/) })])
    expect(report.counts.painting.failed).toBe(0)
    // Items whose thumbnail failed are still mirrored, without a thumbnail (never the full image).
    const records = [...(await listRepo(stack, ana.did, PAINTING)).values()]
    for (const p of [hostileSlug, escape, truncated, notImage, bomb]) {
      const r = records.find((x) => x.value.ref === p._id.toHexString())
      expect(r?.value.thumbnail, p.code).toBeUndefined()
    }
    expect(records.find((x) => x.value.ref === good._id.toHexString())?.value.thumbnail).toBeDefined()
    for (const [name] of Object.entries(bad)) await stack.mongo.collection(bad[name].collection).deleteOne({ _id: ids[name] })
    for (const p of [hostileSlug, escape, truncated, notImage, bomb, unknown, accountless]) await stack.mongo.collection('paintings').deleteOne({ _id: p._id })
  })

  it('writes nothing anywhere in a dry run, and says what it would do', async () => {
    const p = await addPainting(stack, ana, { code: 'Dr1', png: await pixelArt(50) })
    const before = await listRepo(stack, ana.did, PAINTING)
    const report = await runBackfill(stack.cfg, stack.log, { dryRun: true })
    expect(report.changes).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'create', kind: 'painting', id: p._id.toHexString(), repo: ana.pdsHandle })]),
    )
    expect([...(await listRepo(stack, ana.did, PAINTING)).keys()]).toEqual([...before.keys()])
    expect((await doc(stack.mongo, 'paintings', p._id))!.atproto).toBeUndefined()
  })

  it("audit finds AC's real faults and --fix repairs them; a second audit is clean", async () => {
    await runBackfill(stack.cfg, stack.log)
    const clean = await runAudit(stack.cfg, stack.log, {})
    expect(clean.findings).toEqual([])

    // Duplicates by ref, a mood with `text`, a record for a nuked painting, a dangling back-reference.
    const mood = await stack.mongo.collection('moods').findOne({ user: ana.sub, deleted: { $ne: true } })
    await legacyRecord(MOOD, { mood: mood!.mood, when: mood!.when.toISOString(), ref: mood!._id.toHexString() })
    const textMoodId = new ObjectId()
    const textWhen = new Date('2023-03-03T03:03:03Z')
    await stack.mongo.collection('moods').insertOne({ _id: textMoodId, mood: 'bulk synced', when: textWhen, user: ana.sub })
    await legacyRecord(MOOD, { text: 'bulk synced', when: textWhen.toISOString(), ref: textMoodId.toHexString() })
    const nuked = await addPainting(stack, ana, { code: 'Nk1', png: await pixelArt(48), nuked: true })
    await legacyRecord(PAINTING, {
      slug: nuked.slug,
      code: 'Nk1',
      imageUrl: 'https://aesthetic.computer/media/paintings/Nk1.png',
      when: nuked.when.toISOString(),
      ref: nuked._id.toHexString(),
    })
    const painting = await stack.mongo.collection('paintings').findOne({ code: 'Gd1' })
    await stack.mongo
      .collection('paintings')
      .updateOne({ _id: painting!._id }, { $set: { 'atproto.rkey': '3kaaaaaaaaaa2', 'atproto.uri': `at://${ana.did}/${PAINTING}/3kaaaaaaaaaa2` } })
    const orphan = await legacyRecord(PAINTING, {
      slug: 'x',
      code: 'Or1',
      imageUrl: 'https://aesthetic.computer/media/paintings/Or1.png',
      when: new Date().toISOString(),
      ref: new ObjectId().toHexString(),
    })

    const found = await runAudit(stack.cfg, stack.log, {})
    expect(found.clean).toBe(false)
    expect(found.counts).toMatchObject({ duplicate: 1, drifted: 1, orphan: 2 })
    expect(found.findings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'drifted', id: textMoodId.toHexString(), detail: expect.stringContaining('mood') }),
        expect.objectContaining({ type: 'orphan', id: nuked._id.toHexString() }),
        expect.objectContaining({ type: 'orphan', uri: orphan.uri }),
        expect.objectContaining({ id: painting!._id.toHexString() }),
      ]),
    )

    const fixed = await runAudit(stack.cfg, stack.log, { fix: true })
    expect(fixed.fix!.after.findings).toEqual([])
    expect(fixed.fix!.after.clean).toBe(true)
    expect((await runAudit(stack.cfg, stack.log, {})).clean).toBe(true)
  })

  it('wipe deletes a user’s records and clears back-references; restore mirrors them again', async () => {
    const before = await listRepo(stack, ana.did, PAINTING)
    const wiped = await runWipe(stack.cfg, stack.log, '@ana', ['painting'])
    expect(wiped.deleted.painting).toBe(before.size)
    expect((await listRepo(stack, ana.did, PAINTING)).size).toBe(0)
    expect(await stack.mongo.collection('paintings').countDocuments({ user: ana.sub, atproto: { $exists: true } })).toBe(0)
    expect((await listRepo(stack, ana.did, MOOD)).size).toBeGreaterThan(0)

    const restored = await runBackfill(stack.cfg, stack.log, { handles: ['@ana'], only: ['painting'] })
    expect(restored.counts.painting.create).toBe(await stack.mongo.collection('paintings').countDocuments({ user: ana.sub, nuked: { $ne: true } }))
    expect((await runAudit(stack.cfg, stack.log, {})).clean).toBe(true)
  })

  it('mirrors anonymous items into the guest repo', async () => {
    const anon = await addPainting(stack, null, { code: 'An1', slug: 'Ab3dE6gH', png: await pixelArt(64) })
    await runBackfill(stack.cfg, stack.log, { anonymous: true })
    const records = [...(await listRepo(stack, guest.did, PAINTING)).values()]
    expect(records.map((r) => r.value.ref)).toContain(anon._id.toHexString())
  })
})

describe('writer sessions', () => {
  let stack: Stack

  beforeAll(async () => {
    stack = await startStack()
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('recovers from a rejected access token and from a revoked session without failing the write', async () => {
    const user = await addUser(stack, 'relogger')
    const client = await RepoClient.login(stack.net.pdsUrl, user, stack.log)
    const tokens = (client as unknown as { session: { session: { accessJwt: string; refreshJwt: string } } }).session.session
    const write = (n: number) =>
      client.applyWrites([
        {
          action: 'create',
          collection: MOOD,
          rkey: deterministicRkey(new ObjectId().toHexString(), new Date()),
          value: { $type: MOOD, mood: `m${n}`, when: new Date().toISOString(), ref: 'x' },
        },
      ])

    tokens.accessJwt = 'not-a-token' // the PDS rejects it: the session is refreshed or replaced
    await write(1)
    const again = (client as unknown as { session: { session: { accessJwt: string; refreshJwt: string } } }).session.session
    again.accessJwt = 'not-a-token'
    again.refreshJwt = 'revoked' // nothing to refresh with: one new login
    await write(2)
    expect((await listRepo(stack, user.did, MOOD)).size).toBe(2)
  })

  it('renews an expired access token with its refresh token, without logging in again', async () => {
    const user = await addUser(stack, 'sleeper')
    const client = await RepoClient.login(stack.net.pdsUrl, user, stack.log)
    const tokens = () => (client as unknown as { session: { session: { accessJwt: string } } }).session.session.accessJwt
    const first = tokens()
    const relogin = vi.spyOn(client as unknown as { relogin: () => Promise<void> }, 'relogin')
    // The PDS's access tokens live 2 hours: 3 hours later it answers ExpiredToken.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 3 * 3600_000 })
    try {
      await client.applyWrites([
        {
          action: 'create',
          collection: MOOD,
          rkey: deterministicRkey(new ObjectId().toHexString(), new Date()),
          value: { $type: MOOD, mood: 'later', when: new Date().toISOString(), ref: 'x' },
        },
      ])
    } finally {
      vi.useRealTimers()
    }
    expect(tokens()).not.toBe(first)
    expect(relogin).not.toHaveBeenCalled()
    expect((await listRepo(stack, user.did, MOOD)).size).toBe(1)
  })
})

describe('thumbnails', () => {
  it('fall back to JPEG when the PNG would exceed the limit, and refuse when nothing fits', async () => {
    const noise = await sharp(randomBytes(1024 * 1024 * 3), { raw: { width: 1024, height: 1024, channels: 3 } })
      .png()
      .toBuffer()
    const png = await makeThumbnail(noise, 1_048_576)
    expect(png.mimeType).toBe('image/png')
    const limit = png.bytes.length - 1
    const jpeg = await makeThumbnail(noise, limit)
    expect(jpeg.mimeType).toBe('image/jpeg')
    expect(jpeg.bytes.length).toBeLessThanOrEqual(limit)
    expect(await sharp(jpeg.bytes).metadata()).toMatchObject({ width: 512, height: 512, format: 'jpeg' })
    await expect(makeThumbnail(noise, 1000)).rejects.toThrow(/exceeds 1000 bytes even as JPEG/)
  })
})

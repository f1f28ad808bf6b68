import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { promisify } from 'node:util'
import { lexicons as bskyLexicons } from '@atproto/api'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWriterContext } from '../src/writer/context.js'
import { share, unshare, type ShareOptions } from '../src/writer/share.js'
import { convertTape } from '../src/writer/tape-video.js'
import { addPainting, addUser, listRepo, pixelArt, putMedia, type AcUser } from './support/ac.js'
import { startStack, type Stack } from './support/stack.js'
import { tapeZip } from './support/tape-fixtures.js'

const POST = 'app.bsky.feed.post'
const ROOT = path.resolve(import.meta.dirname, '..')

/**
 * `writer share`: items posted to Bluesky as AC's scripts do, from the owner's account or AC's,
 * exactly once whatever is re-run or interrupted; `--unshare` deletes the post.
 */
describe('writer share', () => {
  let stack: Stack
  let artist: AcUser
  let opts: ShareOptions
  let acAccount: { did: string; password: string }

  const posts = async (did: string) => [...(await listRepo(stack, did, POST)).values()]
  const backref = async (collection: string, code: string) => (await stack.mongo.collection(collection).findOne({ code }))?.bluesky

  beforeAll(async () => {
    stack = await startStack()
    artist = await addUser(stack, 'artist')
    const ac = await stack.net.createAccount('aesthetic')
    acAccount = { did: ac.did, password: ac.password }
    opts = {
      db: stack.mongo,
      pdsUrl: stack.net.pdsUrl,
      ctx: createWriterContext(stack.cfg),
      log: stack.log,
      guestUser: 'art-guest',
      account: { pdsUrl: stack.net.pdsUrl, credentials: acAccount },
    }
  })

  afterAll(async () => {
    await stack?.close()
  })

  it("posts a painting as AC's script does, once however often it is shared", async () => {
    await addPainting(stack, artist, { code: 'sh1', slug: '2024.5.6.7.8.9.123:2024.5.6.7.8.9.124', png: await pixelArt(64) })
    const first = await share('#sh1', 'owner', opts)
    expect(first).toMatchObject({ code: '#sh1', kind: 'painting', action: 'created', uri: expect.stringContaining(`at://${artist.did}/${POST}/`) })
    const [post] = await posts(artist.did)
    const link = 'https://aesthetic.computer/painting~@artist/2024.5.6.7.8.9.123'
    expect(post.value).toMatchObject({
      text: `New painting by @artist 🎨✨\n\n${link}`,
      embed: { $type: 'app.bsky.embed.images', images: [{ alt: 'Painting by @artist on aesthetic.computer', aspectRatio: { width: 64, height: 64 } }] },
    })
    const facet = post.value.facets[0]
    expect(Buffer.from(post.value.text).subarray(facet.index.byteStart, facet.index.byteEnd).toString()).toBe(link)
    expect(facet.features).toEqual([{ $type: 'app.bsky.richtext.facet#link', uri: link }])
    bskyLexicons.assertValidRecord(POST, post.value)
    expect(await backref('paintings', 'sh1')).toEqual({ uri: post.uri, cid: post.cid, rkey: post.uri.split('/').pop() })

    expect(await share('#sh1', 'owner', opts)).toMatchObject({ action: 'unchanged', uri: post.uri, cid: post.cid })
    expect(await share('#sh1', 'account', opts)).toMatchObject({ action: 'unchanged', uri: post.uri }) // shared already, from the owner
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/ac-appview.js'), 'writer', 'share', '#sh1', '--json'], {
      cwd: ROOT,
      env: { ...process.env, ...envOf(stack), LOG_LEVEL: 'silent' },
    })
    expect(JSON.parse(stdout)).toMatchObject({ action: 'unchanged', uri: post.uri })
    expect(await posts(artist.did)).toHaveLength(1)
    expect(await posts(acAccount.did)).toHaveLength(0)
  })

  it('completes a share that a crash interrupted, at the same rkey, without a second post', async () => {
    await addPainting(stack, artist, { code: 'sh2', png: await pixelArt(16, 2) })
    const first = await share('#sh2', 'owner', opts)
    const rkey = first.uri!.split('/').pop()!
    // crash after the post, before its cid reached MongoDB
    await stack.mongo.collection('paintings').updateOne({ code: 'sh2' }, { $unset: { 'bluesky.cid': '' } })
    expect(await share('#sh2', 'account', opts)).toMatchObject({ action: 'adopted', uri: first.uri, cid: first.cid })
    expect(await backref('paintings', 'sh2')).toEqual({ uri: first.uri, cid: first.cid, rkey })
    // crash after the intent was recorded, before the post: the rerun posts at the recorded key
    await stack.net.network.pds
      .getAgent()
      .com.atproto.repo.deleteRecord({ repo: artist.did, collection: POST, rkey }, { headers: await loginHeaders(stack, artist) })
    await stack.mongo.collection('paintings').updateOne({ code: 'sh2' }, { $unset: { 'bluesky.cid': '' } })
    const again = await share('#sh2', 'account', opts)
    expect(again).toMatchObject({ action: 'created', uri: first.uri })
    expect((await posts(artist.did)).filter((p) => p.uri === first.uri)).toHaveLength(1)
  })

  it('refuses to post again a share deleted outside ac-appview, and unshares on request', async () => {
    await addPainting(stack, artist, { code: 'sh3', png: await pixelArt(16, 3) })
    const { uri } = await share('#sh3', 'owner', opts)
    const rkey = uri!.split('/').pop()!
    await stack.net.network.pds
      .getAgent()
      .com.atproto.repo.deleteRecord({ repo: artist.did, collection: POST, rkey }, { headers: await loginHeaders(stack, artist) })
    await expect(share('#sh3', 'owner', opts)).rejects.toThrow(/no longer exists.*unshare/)
    expect(await unshare('#sh3', opts)).toMatchObject({ action: 'deleted', uri })
    expect(await backref('paintings', 'sh3')).toBeUndefined()
    expect((await share('#sh3', 'owner', opts)).action).toBe('created')
  })

  it('deletes the post of a nuked item on --unshare, and never shares a nuked item', async () => {
    await addPainting(stack, artist, { code: 'sh4', png: await pixelArt(16, 4) })
    const { uri } = await share('#sh4', 'account', opts)
    expect(uri).toContain(acAccount.did)
    await stack.mongo.collection('paintings').updateOne({ code: 'sh4' }, { $set: { nuked: true } })
    await expect(share('#sh4', 'owner', opts)).rejects.toThrow('#sh4 is nuked or deleted in MongoDB: not shared')
    expect(await unshare('#sh4', opts)).toMatchObject({ action: 'deleted', uri })
    expect((await posts(acAccount.did)).map((p) => p.uri)).not.toContain(uri)
    expect(await unshare('#sh4', opts)).toMatchObject({ action: 'absent' })
  })

  it('shares a tape with its video and a KidLisp program as text and link', async () => {
    const mp4 = (await convertTape(await tapeZip({ width: 24, height: 24, frames: 4 }))).mp4
    await putMedia(stack, 'at-blobs-aesthetic-computer', 'tapes/shT.mp4', mp4)
    await stack.mongo.collection('tapes').insertOne({
      code: 'shT',
      slug: 'shTslug',
      when: new Date('2025-01-01'),
      user: artist.sub,
      bucket: 'user-aesthetic-computer',
      nuked: false,
      mp4Status: 'complete',
      mp4Url: `${stack.storageUrl('at-blobs-aesthetic-computer')}/tapes/shT.mp4`,
    })
    const source = `(wipe navy)\n${'(ink rainbow) (line 0 0 w h)\n'.repeat(20)}`
    await stack.mongo.collection('kidlisp').insertOne({ code: 'shK', source, hash: 'x', when: new Date('2025-01-02'), user: artist.sub })
    const tape = await share('!shT', 'account', opts)
    const kid = await share('$shK', 'owner', opts)
    const tapePost = (await posts(acAccount.did)).find((p) => p.uri === tape.uri)!
    expect(tapePost.value).toMatchObject({
      text: 'New tape by @artist 📼\n\nhttps://aesthetic.computer/!shT',
      embed: { $type: 'app.bsky.embed.video', alt: 'Tape by @artist on aesthetic.computer', video: { mimeType: 'video/mp4', size: mp4.length } },
    })
    const kidPost = (await posts(artist.did)).find((p) => p.uri === kid.uri)!
    expect(kidPost.value.text).toMatch(/^KidLisp by @artist 🧩\n\n\(wipe navy\)\n\(ink rainbow\)[^]*…\n\nhttps:\/\/aesthetic\.computer\/\$shK$/)
    expect(kidPost.value.embed).toBeUndefined()
    expect(kidPost.value.facets[0].features[0].uri).toBe('https://aesthetic.computer/$shK')
    for (const p of [tapePost, kidPost]) bskyLexicons.assertValidRecord(POST, p.value)
  })

  it('scales a painting larger than the image embed allows', async () => {
    const noise = await sharp(randomBytes(900 * 900 * 3), { raw: { width: 900, height: 900, channels: 3 } })
      .png()
      .toBuffer()
    expect(noise.length).toBeGreaterThan(1_000_000)
    await addPainting(stack, artist, { code: 'shB', png: noise })
    const { uri } = await share('#shB', 'owner', opts)
    const image = (await posts(artist.did)).find((p) => p.uri === uri)!.value.embed.images[0]
    expect(image.image.size).toBeLessThanOrEqual(1_000_000)
    expect(image.aspectRatio).toEqual({ width: 900, height: 900 })
  })

  it('names what is wrong: a malformed or unknown code, an owner without an account, no AC account', async () => {
    await expect(share('abc', 'owner', opts)).rejects.toThrow('not a code: "abc"')
    await expect(share('#nope', 'owner', opts)).rejects.toThrow('no painting has the code #nope')
    await addPainting(stack, { sub: 'auth0|nobody' } as AcUser, { code: 'shN', png: await pixelArt(8) })
    await expect(share('#shN', 'owner', opts)).rejects.toThrow('#shN: its owner auth0|nobody has no PDS account (share it --as account)')
    await expect(share('#shN', 'account', { ...opts, account: undefined })).rejects.toThrow(/AC_BSKY_DID and AC_BSKY_PASSWORD/)
    expect(await backref('paintings', 'shN')).toBeUndefined()
    const cli = promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/ac-appview.js'), 'writer', 'share', '#nope'], {
      cwd: ROOT,
      env: { ...process.env, ...envOf(stack), LOG_LEVEL: 'silent' },
    })
    await expect(cli).rejects.toMatchObject({ code: 2, stderr: 'ac-appview: no painting has the code #nope\n' })
  })
})

/** The environment the CLI needs to reach the stack. */
function envOf(stack: Stack): Record<string, string> {
  const c = stack.cfg
  return {
    MONGODB_URI: c.MONGODB_URI!,
    MONGODB_DB: c.MONGODB_DB,
    PDS_URL: c.PDS_URL!,
    PLC_URL: c.PLC_URL,
    AC_STORAGE_URL: c.AC_STORAGE_URL,
    ALLOW_PRIVATE_NETWORK: 'true',
    DATA_DIR: c.DATA_DIR,
  }
}

/** Authorization headers of a session of `user` (to delete a record outside ac-appview). */
async function loginHeaders(stack: Stack, user: AcUser): Promise<Record<string, string>> {
  const res = await stack.net.network.pds.getAgent().com.atproto.server.createSession({ identifier: user.did, password: user.password })
  return { authorization: `Bearer ${res.data.accessJwt}` }
}

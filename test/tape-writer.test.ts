import { mkdir, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readDoc } from '../src/collections/index.js'
import { tape } from '../src/collections/tape.js'
import { runBackfill } from '../src/services.js'
import type { BackfillReport } from '../src/writer/backfill.js'
import { createWriterContext } from '../src/writer/context.js'
import { convertTape } from '../src/writer/tape-video.js'
import { ffprobe, framePng, makeZip, noiseTapeZip, tapeZip } from './support/tape-fixtures.js'
import { startStack, type Stack } from './support/stack.js'

const GUEST_BUCKET = 'art-aesthetic-computer'
const BLOBS_BUCKET = 'at-blobs-aesthetic-computer'

/** Tapes through the real writer and PDS: pending tapes are converted, bad ones reported (issue 4). */
describe('writer: tapes become videos', () => {
  let stack: Stack
  let guestDid: string
  let first: BackfillReport
  const ids = { pending: new ObjectId(), traversal: new ObjectId(), missing: new ObjectId(), complete: new ObjectId(), big: new ObjectId() }
  /** AC's own MP4 and thumbnail of the complete tape, as served from storage. */
  let acMp4: Uint8Array
  let acThumb: Uint8Array

  /** Writes an object into the stand-in object storage. */
  async function put(bucket: string, key: string, bytes: Uint8Array) {
    const file = path.join(stack.mediaDir, bucket, key)
    await mkdir(path.dirname(file), { recursive: true })
    await writeFile(file, bytes)
  }

  /** A guest (anonymous) tape document as AC stores it. */
  function tapeDoc(_id: ObjectId, code: string, extra: Record<string, unknown> = {}) {
    return { _id, code, slug: `${code}slug`, when: new Date('2025-10-23T12:30:00.123Z'), bucket: GUEST_BUCKET, nuked: false, mp4Status: 'pending', ...extra }
  }

  async function record(id: ObjectId) {
    const doc = await stack.mongo.collection('tapes').findOne({ _id: id })
    const uri = doc?.atproto?.uri as string
    const res = await stack.net.network.pds
      .getAgent()
      .com.atproto.repo.getRecord({ repo: guestDid, collection: 'computer.aesthetic.tape', rkey: uri.split('/').pop()! })
    return res.data.value as Record<string, any>
  }

  async function blob(cid: string): Promise<Uint8Array> {
    const res = await fetch(`${stack.net.pdsUrl}/xrpc/com.atproto.sync.getBlob?did=${guestDid}&cid=${cid}`)
    expect(res.status).toBe(200)
    return new Uint8Array(await res.arrayBuffer())
  }

  beforeAll(async () => {
    stack = await startStack()
    const guest = await stack.net.createAccount('art')
    guestDid = guest.did
    await stack.mongo
      .collection('users')
      .insertOne({ _id: 'art-guest' as never, code: 'ac21artg', when: new Date('2021-01-01'), atproto: { ...guest, createdAt: new Date() } })

    await put(GUEST_BUCKET, 'tpendslug.zip', await tapeZip({ width: 96, height: 54, frames: 12, soundSeconds: 1.5 }))
    const frame = await framePng(12, 12, 0)
    await put(
      GUEST_BUCKET,
      'ttravslug.zip',
      makeZip([
        { name: 'frame-00000.png', data: frame },
        { name: '../evil.png', data: frame },
      ]),
    )
    const done = await convertTape(await tapeZip({ width: 48, height: 48, frames: 5 }))
    acMp4 = done.mp4
    acThumb = done.thumbnail
    await put(BLOBS_BUCKET, 'tapes/tdone.mp4', acMp4)
    await put(BLOBS_BUCKET, 'tapes/tdone-thumb.jpg', acThumb)
    await stack.mongo.collection('tapes').insertMany([
      tapeDoc(ids.pending, 'tpend'),
      tapeDoc(ids.traversal, 'ttrav', { mp4Status: 'processing' }),
      tapeDoc(ids.missing, 'tgone'),
      tapeDoc(ids.complete, 'tdone', {
        mp4Status: 'complete',
        mp4Url: `${stack.storageUrl(BLOBS_BUCKET)}/tapes/tdone.mp4`,
        thumbnailUrl: `${stack.storageUrl(BLOBS_BUCKET)}/tapes/tdone-thumb.jpg`,
      }),
    ])
    first = await runBackfill(stack.cfg, stack.log)
  })

  afterAll(async () => {
    await stack?.close()
  })

  it('mirrors the good tapes and reports each bad one as failed with its reason, in one run', () => {
    expect(first.counts.tape).toMatchObject({ create: 2, failed: 2 })
    expect(first.changes.map((c) => c.id).sort()).toEqual([ids.pending, ids.complete].map((i) => i.toHexString()).sort())
    const failed = first.problems.filter((p) => p.action === 'failed')
    expect(failed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          kind: 'tape',
          id: ids.traversal.toHexString(),
          reason: expect.stringMatching(/^video: tape ZIP http:\/\/.*\/ttravslug\.zip: ZIP entry "\.\.\/evil\.png": path traversal \(\.\.\) is not allowed$/),
        }),
        expect.objectContaining({
          kind: 'tape',
          id: ids.missing.toHexString(),
          reason: expect.stringMatching(/^video: GET http:\/\/.*\/tgoneslug\.zip: HTTP 404$/),
        }),
      ]),
    )
    expect(failed).toHaveLength(2)
  })

  it('gives a pending tape a video blob converted from its ZIP, and a JPEG thumbnail', async () => {
    const value = await record(ids.pending)
    expect(value).toMatchObject({ code: 'tpend', slug: 'tpendslug', ref: ids.pending.toHexString() })
    expect(value.video).toMatchObject({ mimeType: 'video/mp4' })
    expect(value.thumbnail).toMatchObject({ mimeType: 'image/jpeg' })
    const mp4 = await blob(value.video.ref.toString())
    expect(Buffer.from(mp4.subarray(4, 8)).toString('latin1')).toBe('ftyp')
    const probe = await ffprobe(mp4)
    expect(probe.streams.map((s) => [s.codec_type, s.codec_name])).toEqual([
      ['video', 'h264'],
      ['audio', 'aac'],
    ])
    expect(probe.streams[0]).toMatchObject({ width: 96, height: 54, pix_fmt: 'yuv420p', nb_read_frames: '12' })
    const thumb = await blob(value.thumbnail.ref.toString())
    expect([...thumb.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]) // JPEG SOI
  })

  it("uses AC's own MP4 and thumbnail for a tape whose MP4 is complete", async () => {
    const value = await record(ids.complete)
    expect(Buffer.from(await blob(value.video.ref.toString())).equals(Buffer.from(acMp4))).toBe(true)
    expect(Buffer.from(await blob(value.thumbnail.ref.toString())).equals(Buffer.from(acThumb))).toBe(true)
  })

  it('converts nothing again on a second run', async () => {
    const second = await runBackfill(stack.cfg, stack.log)
    expect(second.changes).toEqual([])
    expect(second.counts.tape).toMatchObject({ unchanged: 2, failed: 2 })
  })

  it('converts once for both blobs of an item: the thumbnail needs no second fetch', async () => {
    await put(GUEST_BUCKET, 'tonceslug.zip', await tapeZip({ width: 36, height: 24, frames: 4 }))
    const doc = tapeDoc(new ObjectId(), 'tonce')
    const item = readDoc(tape, doc)
    const ctx = createWriterContext(stack.cfg)
    const [video, thumbnail] = tape.blobs
    expect((await video.make(item, ctx))?.mimeType).toBe('video/mp4')
    await rm(path.join(stack.mediaDir, GUEST_BUCKET, 'tonceslug.zip'))
    expect((await thumbnail.make(item, ctx))?.mimeType).toBe('image/jpeg')
    // The same document read again (as the next run would) has to fetch, and finds the ZIP gone.
    await expect(video.make(readDoc(tape, doc), ctx)).rejects.toThrow(/tonceslug\.zip: HTTP 404$/)
  })

  it("reports a video over the PDS's upload limit as a failure", async () => {
    await put(GUEST_BUCKET, 'tbigslug.zip', await noiseTapeZip(560, 560, 60))
    await stack.mongo.collection('tapes').insertOne(tapeDoc(ids.big, 'tbig'))
    const report = await runBackfill(stack.cfg, stack.log)
    const big = report.problems.filter((p) => p.id === ids.big.toHexString())
    expect(big).toEqual([
      expect.objectContaining({
        action: 'failed',
        reason: expect.stringMatching(/^video: video\/mp4 blob of \d+ bytes is over the PDS's upload limit \(HTTP 413\)$/),
      }),
    ])
  })
})

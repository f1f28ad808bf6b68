import fs from 'node:fs/promises'
import path from 'node:path'
import zlib from 'node:zlib'
import { ObjectId, type Db } from 'mongodb'
import sharp from 'sharp'
import type { Stack } from './stack.js'

/** An AC user with a PDS account, as AC stores it in `users` and `@handles`. */
export interface AcUser {
  sub: string
  handle: string
  did: string
  pdsHandle: string
  password: string
}

/** Creates a PDS account and the `users` and `@handles` documents AC keeps for it. */
export async function addUser(stack: Stack, name: string): Promise<AcUser> {
  const account = await stack.net.createAccount(name)
  const sub = `auth0|${new ObjectId().toHexString()}`
  await stack.mongo
    .collection('users')
    .insertOne({ _id: sub as never, code: `ac${name.slice(0, 6)}`, when: new Date(), atproto: { ...account, createdAt: new Date() } })
  await stack.mongo.collection('@handles').insertOne({ _id: sub as never, handle: name, createdAt: new Date(), updatedAt: new Date() })
  return { sub, handle: name, did: account.did, pdsHandle: account.handle, password: account.password }
}

/** AC's guest account `art-guest`, which owns anonymous items. */
export async function addGuest(stack: Stack): Promise<AcUser> {
  const account = await stack.net.createAccount('art')
  await stack.mongo.collection('users').insertOne({ _id: 'art-guest' as never, code: 'art', when: new Date(), atproto: { ...account, createdAt: new Date() } })
  return { sub: 'art-guest', handle: 'art', did: account.did, pdsHandle: account.handle, password: account.password }
}

/** Writes a file into the stack's object storage under `bucket/key`. */
export async function putMedia(stack: Stack, bucket: string, key: string, bytes: Uint8Array | string): Promise<void> {
  const file = path.join(stack.mediaDir, bucket, key)
  await fs.mkdir(path.dirname(file), { recursive: true })
  await fs.writeFile(file, bytes)
}

/** A blocky pixel-art PNG, `size` pixels square. */
export async function pixelArt(size: number, seed = 1): Promise<Buffer> {
  const raw = Buffer.alloc(size * size * 3)
  for (let i = 0; i < size * size; i++) raw.fill((Math.floor(i / 7) * 37 + seed * 101) % 256, i * 3, i * 3 + 3)
  return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer()
}

/** A PNG whose header claims `width`×`height` but holds almost nothing: a decompression bomb's shape. */
export function bombPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type), data])
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(zlib.crc32(body))
    return Buffer.concat([len, body, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.set([8, 2, 0, 0, 0], 8) // 8-bit RGB
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(1024))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

/** A user painting document and its PNG in storage (`user-aesthetic-computer/{sub}/painting/{slug}.png`). */
export async function addPainting(stack: Stack, owner: AcUser | null, fields: { code: string; slug?: string; when?: Date; png?: Uint8Array; nuked?: boolean }) {
  const _id = new ObjectId()
  const slug = fields.slug ?? `2024.1.2.3.4.5.${Math.floor(Math.random() * 1000)}`
  const bucket = owner ? 'user-aesthetic-computer' : 'art-aesthetic-computer'
  const key = owner ? `${owner.sub}/painting/${slug.split(':')[0]}.png` : `${slug.split(':')[0]}.png`
  if (fields.png !== undefined) await putMedia(stack, bucket, key, fields.png)
  const doc = {
    _id,
    code: fields.code,
    slug,
    when: fields.when ?? new Date('2024-01-02T03:04:05Z'),
    bucket,
    ...(owner ? { user: owner.sub } : {}),
    ...(fields.nuked ? { nuked: true } : {}),
  }
  await stack.mongo.collection('paintings').insertOne(doc)
  return doc
}

/** Every record of `collection` in a repo, by rkey. */
export async function listRepo(stack: Stack, did: string, collection: string) {
  const agent = stack.net.network.pds.getAgent()
  const out = new Map<string, { uri: string; cid: string; value: any }>()
  let cursor: string | undefined
  do {
    const res = await agent.com.atproto.repo.listRecords({ repo: did, collection, limit: 100, cursor })
    for (const r of res.data.records) out.set(r.uri.split('/').pop()!, { uri: r.uri, cid: r.cid, value: r.value })
    cursor = res.data.records.length ? res.data.cursor : undefined
  } while (cursor)
  return out
}

/** Fetches a MongoDB document by collection and `_id`. */
export function doc(db: Db, collection: string, _id: ObjectId) {
  return db.collection(collection).findOne({ _id })
}

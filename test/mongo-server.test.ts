/**
 * Proves, with the official `mongodb` driver, that the server from `startMongo()` (mongo-java-server, or
 * MONGODB_URI when set) does what the writer and live sync rely on: CRUD with dotted $set/$unset, unique
 * indexes, bulkWrite, sorting, _id range queries, batched cursors and change streams (insert, update with
 * updateLookup, replace, findOneAndUpdate, delete, resumeAfter, postBatchResumeToken, db.watch()).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import {
  MongoClient,
  MongoServerError,
  ObjectId,
  type ChangeStream,
  type ChangeStreamDocument,
  type ChangeStreamInsertDocument,
  type ChangeStreamUpdateDocument,
  type ChangeStreamReplaceDocument,
  type ChangeStreamDeleteDocument,
  type Db,
  type Document,
  type ResumeToken,
} from 'mongodb'
import { startMongo, type MongoHandle } from '../src/dev/mongo-server.js'

const START_TIMEOUT = 300_000 // first run builds the jar with Maven
const TEST_TIMEOUT = 60_000

let handle: MongoHandle
let client: MongoClient
let db: Db
const getMores: number[] = [] // timestamps of getMore commands, for the awaitData check

beforeAll(async () => {
  handle = await startMongo({ dbName: `mongo_server_test_${Date.now()}` })
  client = new MongoClient(handle.uri, { monitorCommands: true })
  client.on('commandStarted', (event) => {
    if (event.commandName === 'getMore') getMores.push(Date.now())
  })
  await client.connect()
  db = client.db(handle.dbName)
}, START_TIMEOUT)

afterAll(async () => {
  if (handle?.external && db) await db.dropDatabase().catch(() => {})
  await client?.close()
  await handle?.stop()
}, 30_000)

/** The next change, failing after `ms` instead of hanging. */
async function nextChange<T extends Document>(stream: ChangeStream<T>, ms = 5_000): Promise<ChangeStreamDocument<T>> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no change event within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([stream.next(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Opens the stream's server cursor (watch() is lazy), so later writes are guaranteed to be seen. */
async function opened<T extends Document>(stream: ChangeStream<T>): Promise<ChangeStream<T>> {
  expect(await stream.tryNext()).toBeNull()
  return stream
}

describe('startMongo', () => {
  it('returns a handle the driver can use', async () => {
    expect(handle.dbName).toMatch(/^mongo_server_test_/)
    if (!handle.external) {
      expect(handle.uri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/\?directConnection=true$/)
    }
    expect(await db.command({ ping: 1 })).toMatchObject({ ok: 1 })
    const info = await db.admin().command({ buildInfo: 1 })
    expect(typeof info.version).toBe('string')
  })

  it('honours MONGODB_URI without starting anything', async () => {
    const saved = { uri: process.env.MONGODB_URI, db: process.env.MONGODB_DB }
    process.env.MONGODB_URI = 'mongodb://example.invalid:27017/'
    process.env.MONGODB_DB = 'from_env'
    try {
      const external = await startMongo()
      expect(external).toMatchObject({ uri: 'mongodb://example.invalid:27017/', dbName: 'from_env', external: true })
      await external.stop()
      expect((await startMongo({ dbName: 'explicit' })).dbName).toBe('explicit')
      delete process.env.MONGODB_DB
      expect((await startMongo()).dbName).toBe('aesthetic')
    } finally {
      for (const [key, value] of [
        ['MONGODB_URI', saved.uri],
        ['MONGODB_DB', saved.db],
      ] as const) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
    }
  })
})

describe('CRUD the writer relies on', () => {
  it('insertMany + find, including $exists: false', async () => {
    const coll = db.collection('paintings')
    const result = await coll.insertMany([
      { slug: 'a', user: 'auth0|1', when: new Date('2024-01-01') },
      { slug: 'b', when: new Date('2024-01-02') },
      { slug: 'c', user: null, when: new Date('2024-01-03') },
    ])
    expect(result.insertedCount).toBe(3)
    expect(Object.values(result.insertedIds).every((id) => id instanceof ObjectId)).toBe(true)

    const all = await coll.find().toArray()
    expect(all.map((d) => d.slug).sort()).toEqual(['a', 'b', 'c'])
    const anonymous = await coll.find({ user: { $exists: false } }).toArray()
    expect(anonymous.map((d) => d.slug)).toEqual(['b']) // user: null exists
    expect((await coll.findOne({ slug: 'a' }))?.when).toEqual(new Date('2024-01-01'))
  })

  it('updateOne $set on sub-fields keeps the other sub-fields; $unset removes', async () => {
    const coll = db.collection('moods')
    const { insertedId } = await coll.insertOne({
      mood: 'happy',
      atproto: { did: 'did:plc:abc', cid: 'bafy1', syncedAt: new Date(0) },
    })
    const r = await coll.updateOne({ _id: insertedId }, { $set: { 'atproto.rkey': 'x', 'atproto.uri': 'y', 'atproto.cid': 'bafy2' } })
    expect(r).toMatchObject({ matchedCount: 1, modifiedCount: 1 })
    expect(await coll.findOne({ _id: insertedId })).toEqual({
      _id: insertedId,
      mood: 'happy',
      atproto: { did: 'did:plc:abc', cid: 'bafy2', syncedAt: new Date(0), rkey: 'x', uri: 'y' },
    })

    await coll.updateOne({ _id: insertedId }, { $unset: { 'atproto.syncedAt': '', mood: '' } })
    expect(await coll.findOne({ _id: insertedId })).toEqual({
      _id: insertedId,
      atproto: { did: 'did:plc:abc', cid: 'bafy2', rkey: 'x', uri: 'y' },
    })
    await coll.updateOne({ _id: insertedId }, { $unset: { atproto: 1 } })
    expect(await coll.findOne({ _id: insertedId })).toEqual({ _id: insertedId })

    const none = await coll.updateOne({ _id: new ObjectId() }, { $set: { a: 1 } })
    expect(none).toMatchObject({ matchedCount: 0, modifiedCount: 0 })
  })

  it('a unique index on code rejects duplicates', async () => {
    const coll = db.collection('kidlisp')
    await coll.createIndex({ code: 1 }, { unique: true })
    await coll.insertOne({ code: 'abc', source: '(wipe blue)' })
    const dup = await coll.insertOne({ code: 'abc', source: 'other' }).catch((e: unknown) => e)
    expect(dup).toBeInstanceOf(MongoServerError)
    expect((dup as MongoServerError).code).toBe(11000)
    const viaUpdate = await coll
      .insertOne({ code: 'def' })
      .then(() => coll.updateOne({ code: 'def' }, { $set: { code: 'abc' } }))
      .catch((e: unknown) => e)
    expect((viaUpdate as MongoServerError).code).toBe(11000)
    // unordered insertMany: the duplicate fails, the rest go in
    const bulk = await coll.insertMany([{ code: 'g1' }, { code: 'abc' }, { code: 'g2' }], { ordered: false }).catch((e: unknown) => e)
    expect((bulk as MongoServerError).code).toBe(11000)
    expect(await coll.countDocuments({ code: { $in: ['g1', 'g2'] } })).toBe(2)
    expect(await coll.countDocuments({ code: 'abc' })).toBe(1)
    const indexes = await coll.indexes()
    expect(indexes.find((i) => i.name === 'code_1')).toMatchObject({ unique: true, key: { code: 1 } })
  })

  it('bulkWrite with inserts, updates, upserts, replace and deletes', async () => {
    const coll = db.collection('bulk')
    await coll.insertMany([{ k: 1 }, { k: 2 }, { k: 3 }])
    const result = await coll.bulkWrite([
      { insertOne: { document: { k: 4 } } },
      { updateOne: { filter: { k: 1 }, update: { $set: { 'atproto.rkey': 'r1' } } } },
      { updateMany: { filter: { k: { $gte: 3 } }, update: { $set: { big: true } } } },
      { updateOne: { filter: { k: 99 }, update: { $set: { k: 99 } }, upsert: true } },
      { replaceOne: { filter: { k: 2 }, replacement: { k: 2, replaced: true } } },
      { deleteOne: { filter: { k: 4 } } },
    ])
    expect(result.insertedCount).toBe(1)
    expect(result.matchedCount).toBe(4)
    expect(result.modifiedCount).toBe(4)
    expect(result.upsertedCount).toBe(1)
    expect(result.deletedCount).toBe(1)
    const docs = await coll
      .find({}, { projection: { _id: 0 } })
      .sort({ k: 1 })
      .toArray()
    expect(docs).toEqual([{ k: 1, atproto: { rkey: 'r1' } }, { k: 2, replaced: true }, { k: 3, big: true }, { k: 99 }])
  })

  it('sorts, _id range queries and countDocuments', async () => {
    const coll = db.collection('ranges')
    const ids = Array.from({ length: 20 }, () => new ObjectId()) // increasing
    await coll.insertMany(ids.map((_id, i) => ({ _id, i, even: i % 2 === 0 })).reverse())
    const after = await coll
      .find({ _id: { $gt: ids[9] } })
      .sort({ _id: 1 })
      .toArray()
    expect(after.map((d) => d.i)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    const page = await coll
      .find({ _id: { $gt: ids[4], $lte: ids[14] } })
      .sort({ _id: -1 })
      .limit(3)
      .toArray()
    expect(page.map((d) => d.i)).toEqual([14, 13, 12])
    const byField = await coll.find({ even: true }).sort({ i: -1 }).project({ _id: 0, i: 1 }).toArray()
    expect(byField.map((d) => d.i)).toEqual([18, 16, 14, 12, 10, 8, 6, 4, 2, 0])
    expect(await coll.countDocuments()).toBe(20)
    expect(await coll.countDocuments({ even: false, _id: { $gt: ids[9] } })).toBe(5)
    expect(await coll.estimatedDocumentCount()).toBe(20)
  })

  it('iterates 5,000 documents with batchSize; times inserts and updates', { timeout: TEST_TIMEOUT }, async () => {
    const coll = db.collection('many')
    const docs = Array.from({ length: 5_000 }, (_, i) => ({
      i,
      slug: `slug-${i}`,
      when: new Date(1_700_000_000_000 + i * 1000),
      atproto: { did: 'did:plc:abc' },
    }))
    let t = performance.now()
    await coll.insertMany(docs)
    const insertMs = performance.now() - t

    const before = getMores.length
    let seen = 0
    let last = -1
    let ordered = true
    for await (const doc of coll.find({}).sort({ _id: 1 }).batchSize(500)) {
      if (doc.i !== last + 1) ordered = false
      last = doc.i
      seen++
    }
    expect(seen).toBe(5_000)
    expect(ordered).toBe(true)
    expect(getMores.length - before).toBeGreaterThanOrEqual(9) // 1 find + ≥ 9 getMores of 500

    const ids = (
      await coll
        .find({}, { projection: { _id: 1 } })
        .limit(500)
        .toArray()
    ).map((d) => d._id)
    t = performance.now()
    for (const [n, _id] of ids.entries()) {
      await coll.updateOne({ _id }, { $set: { 'atproto.rkey': `r${n}`, 'atproto.uri': `at://x/${n}` } })
    }
    const updateMs = performance.now() - t
    expect(await coll.countDocuments({ 'atproto.rkey': { $exists: true } })).toBe(500)
    console.log(`[mongo-server] 5,000 inserts (one insertMany): ${insertMs.toFixed(0)} ms; ` + `500 sequential updateOne by _id: ${updateMs.toFixed(0)} ms`)
  })
})

describe('change streams', () => {
  it('delivers insert, update (updateLookup), replace, findOneAndUpdate and delete', { timeout: TEST_TIMEOUT }, async () => {
    const coll = db.collection('live')
    const stream = await opened(coll.watch([], { fullDocument: 'updateLookup', maxAwaitTimeMS: 250 }))
    try {
      const { insertedId } = await coll.insertOne({ slug: 'one', atproto: { did: 'did:plc:abc' } })
      const inserted = (await nextChange(stream)) as ChangeStreamInsertDocument
      expect(inserted.operationType).toBe('insert')
      expect(inserted.documentKey._id).toEqual(insertedId)
      expect(inserted.fullDocument).toMatchObject({ _id: insertedId, slug: 'one' })
      expect(inserted.ns).toEqual({ db: handle.dbName, coll: 'live' })
      expect(inserted._id).toBeTruthy()

      await coll.updateOne({ _id: insertedId }, { $set: { 'atproto.rkey': 'x' }, $unset: { slug: '' } })
      const updated = (await nextChange(stream)) as ChangeStreamUpdateDocument
      expect(updated.operationType).toBe('update')
      expect(updated.documentKey._id).toEqual(insertedId)
      expect(updated.fullDocument).toEqual({ _id: insertedId, atproto: { did: 'did:plc:abc', rkey: 'x' } })
      expect(updated.updateDescription?.updatedFields).toEqual({ 'atproto.rkey': 'x' })
      expect(updated.updateDescription?.removedFields).toEqual(['slug'])

      await coll.replaceOne({ _id: insertedId }, { slug: 'replaced' })
      const replaced = (await nextChange(stream)) as ChangeStreamReplaceDocument
      expect(replaced.operationType).toBe('replace')
      expect(replaced.fullDocument).toEqual({ _id: insertedId, slug: 'replaced' })

      await coll.findOneAndUpdate({ _id: insertedId }, { $inc: { n: 1 } })
      const viaFindAndModify = (await nextChange(stream)) as ChangeStreamUpdateDocument
      expect(viaFindAndModify.operationType).toBe('update')
      expect(viaFindAndModify.documentKey._id).toEqual(insertedId)
      expect(viaFindAndModify.fullDocument).toMatchObject({ n: 1 })

      await coll.deleteOne({ _id: insertedId })
      const deleted = (await nextChange(stream)) as ChangeStreamDeleteDocument
      expect(deleted.operationType).toBe('delete')
      expect(deleted.documentKey._id).toEqual(insertedId)
    } finally {
      await stream.close()
    }
  })

  it('resumes after close from a stored resumeAfter token', { timeout: TEST_TIMEOUT }, async () => {
    const coll = db.collection('resume')
    const first = await opened(coll.watch([], { fullDocument: 'updateLookup', maxAwaitTimeMS: 250 }))
    await coll.insertOne({ n: 1 })
    const seen = await nextChange(first)
    expect(seen.operationType).toBe('insert')
    const token: ResumeToken = first.resumeToken
    expect(token).toBeTruthy()
    await first.close()

    const { insertedId } = await coll.insertOne({ n: 2 })
    await coll.updateOne({ _id: insertedId }, { $set: { n: 3 } })
    await coll.deleteMany({ n: 1 })

    const resumed = coll.watch([], { resumeAfter: token, fullDocument: 'updateLookup', maxAwaitTimeMS: 250 })
    try {
      const events = [await nextChange(resumed), await nextChange(resumed), await nextChange(resumed)]
      expect(events.map((e) => e.operationType)).toEqual(['insert', 'update', 'delete'])
      expect((events[0] as ChangeStreamInsertDocument).fullDocument).toMatchObject({ n: 2 })
      expect((events[1] as ChangeStreamUpdateDocument).fullDocument).toMatchObject({ _id: insertedId, n: 3 })
      expect(await resumed.tryNext()).toBeNull() // nothing replayed twice
    } finally {
      await resumed.close()
    }
  })

  it('advances the resume token while idle (postBatchResumeToken) and filters with $match', { timeout: TEST_TIMEOUT }, async () => {
    const coll = db.collection('filtered')
    const stream = await opened(coll.watch([{ $match: { operationType: { $in: ['insert', 'delete'] } } }], { maxAwaitTimeMS: 250 }))
    try {
      const idleToken = stream.resumeToken
      expect(idleToken).toBeTruthy() // usable before any event
      const { insertedId } = await coll.insertOne({ a: 1 })
      await coll.updateOne({ _id: insertedId }, { $set: { a: 2 } })
      await coll.deleteOne({ _id: insertedId })
      expect((await nextChange(stream)).operationType).toBe('insert')
      expect((await nextChange(stream)).operationType).toBe('delete')
      expect(stream.resumeToken).not.toEqual(idleToken)
    } finally {
      await stream.close()
    }
  })

  it('emits no insert event for a document a unique index rejected', { timeout: TEST_TIMEOUT }, async () => {
    const coll = db.collection('unique_live')
    await coll.createIndex({ code: 1 }, { unique: true })
    const stream = await opened(coll.watch([], { maxAwaitTimeMS: 250 }))
    try {
      await coll.insertOne({ code: 'x' })
      await expect(coll.insertOne({ code: 'x' })).rejects.toMatchObject({ code: 11000 })
      await coll.insertOne({ code: 'y' })
      const codes = [await nextChange(stream), await nextChange(stream)].map((e) => (e as ChangeStreamInsertDocument).fullDocument.code)
      expect(codes).toEqual(['x', 'y'])
    } finally {
      await stream.close()
    }
  })

  it('watches a whole database', { timeout: TEST_TIMEOUT }, async () => {
    const stream = await opened(db.watch([], { maxAwaitTimeMS: 250 }))
    try {
      await db.collection('db_a').insertOne({ a: 1 })
      await db.collection('db_b').insertOne({ b: 1 })
      const colls = [await nextChange(stream), await nextChange(stream)].map((e) => (e as ChangeStreamInsertDocument).ns.coll)
      expect(colls).toEqual(['db_a', 'db_b'])
    } finally {
      await stream.close()
    }
  })

  it('waits for data on the server instead of spinning, and wakes up at once on a write', { timeout: TEST_TIMEOUT }, async () => {
    const coll = db.collection('idle')
    const stream = await opened(coll.watch([], { maxAwaitTimeMS: 1000 }))
    try {
      const before = getMores.length
      const pending = nextChange(stream, 10_000)
      pending.catch(() => {}) // observed below; avoid an unhandled rejection if an assertion fails first
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect(getMores.length - before).toBeLessThanOrEqual(3) // ~1 per maxAwaitTimeMS, not thousands
      const t = performance.now()
      await coll.insertOne({ late: true })
      const event = await pending
      expect(event.operationType).toBe('insert')
      expect(performance.now() - t).toBeLessThan(500)
    } finally {
      await stream.close()
    }
  })
})

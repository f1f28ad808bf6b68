import crypto from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import { jsonToLex } from '@atproto/lexicon'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { ObjectId, type AnyBulkWriteOperation, type Db } from 'mongodb'
import PQueue from 'p-queue'
import type { BlobInput, WriterContext } from '../collections/index.js'
import { lexicons } from '../lexicon/lexicons.js'
import type { Logger } from '../log.js'
import type { Account } from './accounts.js'
import type { Ledger } from './ledger.js'
import { backrefUpdate, idOf, writesToPds, type Planned } from './plan.js'
import { isTransient } from './errors.js'
import { MAX_WRITES_PER_CALL, type RepoClient, type RepoWrite, type WriteResult } from './repo.js'
import type { Action, Outcome, RunRecorder } from './report.js'

/** Records built (thumbnails made, blobs uploaded) at once within a batch. */
const BUILD_CONCURRENCY = 4
/**
 * Records with blobs to make per batch at most: a batch of thumbnails or tape conversions is
 * committed within seconds, so a writer killed every few seconds still moves forward.
 */
const BLOB_ITEMS_PER_BATCH = 24
/** Raw-codec multicodec code: the PDS names blobs by CIDv1 raw SHA-256 of their bytes. */
const RAW_CODEC = 0x55
const SHA256_CODE = 0x12

/** How one repo's plan is carried out. */
export interface ApplyOptions {
  db: Db
  ctx: WriterContext
  ledger?: Ledger
  recorder: RunRecorder
  dryRun?: boolean
  /** Write back-references even when the item's document says they are right (live mode: the document read may be stale). */
  forceBackrefs?: boolean
  /** Runs one batch's writes and back-references (live mode serialises it with the repo's changes); default: at once. */
  exclusive?<T>(fn: () => Promise<T>): Promise<T>
  /** Planned keys to leave alone after all (live mode changed the item since the plan was made). */
  skip?(p: Planned): boolean
  /** Logs each batch written, at debug level. */
  log?: Logger
}

/**
 * Carries out one repo's plan in batches of up to {@link MAX_WRITES_PER_CALL} writes. Each
 * batch builds its records (thumbnails, blob uploads), applies them with one `applyWrites`,
 * then writes their back-references and ledger entries, so a crash loses at most one batch and
 * a restart (which finds the written records unchanged) continues where the last one stopped.
 * Blobs already uploaded to the repo (ledger) are referenced, not uploaded again. In a dry run
 * only reports. Returns the back-references written.
 */
export async function applyPlan(account: Account, client: RepoClient, planned: Planned[], opts: ApplyOptions): Promise<number> {
  return new RepoApplier(account, client, opts).apply(planned)
}

interface PlannedWrite {
  plan: Planned
  write: RepoWrite
}

/** One repo's plan being carried out; see {@link applyPlan}. */
class RepoApplier {
  private readonly repo: string

  constructor(
    private readonly account: Account,
    private readonly client: RepoClient,
    private readonly opts: ApplyOptions,
  ) {
    this.repo = account.handle ?? account.did
  }

  async apply(planned: Planned[]): Promise<number> {
    for (const p of planned) {
      if (p.finding === 'not-ready') this.outcome(p, 'skipped', { reason: p.detail })
      if (p.finding === 'unbuildable') this.outcome(p, 'failed', { reason: p.detail })
    }
    const changing = planned.filter(writesToPds)
    if (this.opts.dryRun) {
      for (const p of changing) this.outcome(p, p.action as Action, { uri: `at://${this.account.did}/${p.col.nsid}/${p.rkey}`, reason: p.detail })
      for (const p of planned.filter((p) => p.action === 'unchanged')) this.outcome(p, 'unchanged')
      return 0
    }
    // Unchanged records and nuked items without one need no write: only their back-references.
    const settled = planned.filter((p) => p.action === 'unchanged' || (p.action === 'none' && p.finding === 'ok'))
    const kept = new Map<Planned, WriteResult>()
    for (const p of settled.filter((p) => p.action === 'unchanged')) {
      kept.set(p, { uri: p.existing!.uri, cid: p.existing!.cid })
      this.outcome(p, 'unchanged', { uri: p.existing!.uri })
    }
    let backrefs = await this.exclusive(() =>
      this.finish(
        settled.filter((p) => !this.opts.skip?.(p)),
        kept,
      ),
    )
    for (const batch of batches(changing)) {
      backrefs += await this.batch(batch)
      this.opts.recorder.flush()
    }
    return backrefs
  }

  /** Builds, writes and back-references one batch. */
  private async batch(batch: Planned[]): Promise<number> {
    const blobs = new BlobUploader(this.account.did, this.client, this.opts.ledger)
    const writes = await this.buildWrites(
      batch.filter((p) => !this.opts.skip?.(p)),
      blobs,
    )
    return this.exclusive(async () => {
      const written = await this.applyWrites(
        writes.filter((w) => !this.opts.skip?.(w.plan)),
        blobs,
      )
      if (written.size) this.opts.log?.debug({ repo: this.repo, writes: written.size }, 'batch written')
      for (const p of batch) if (p.action === 'unchanged' && p.existing) written.set(p, { uri: p.existing.uri, cid: p.existing.cid })
      return this.finish(batch, written)
    })
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.opts.exclusive ? this.opts.exclusive(fn) : fn()
  }

  /** Ledger entries and back-references of planned keys once their writes are done. */
  private finish(planned: Planned[], written: Map<Planned, WriteResult>): Promise<number> {
    rememberWrites(this.opts.ledger, this.account.did, planned, written)
    return writeBackrefs(this.opts.db, planned, written, !!this.opts.forceBackrefs)
  }

  /** The writes of a batch: deletes as they are, creates and updates with their records built (a few at once). */
  private async buildWrites(batch: Planned[], blobs: BlobUploader): Promise<PlannedWrite[]> {
    const writes: PlannedWrite[] = []
    const queue = new PQueue({ concurrency: BUILD_CONCURRENCY })
    for (const plan of batch) {
      if (plan.action === 'delete') {
        writes.push({ plan, write: { action: 'delete', collection: plan.col.nsid, rkey: plan.rkey } })
        continue
      }
      void queue.add(async () => {
        try {
          const value = await this.buildRecord(plan, blobs)
          if (plan.existing && isDeepStrictEqual(plan.existing.value, value)) {
            plan.action = 'unchanged' // e.g. a thumbnail that still cannot be made: nothing to write
            return this.outcome(plan, 'unchanged', { uri: plan.existing.uri })
          }
          writes.push({ plan, write: { action: plan.action as 'create' | 'update', collection: plan.col.nsid, rkey: plan.rkey, value } })
        } catch (err) {
          plan.action = 'failed'
          this.outcome(plan, 'failed', { reason: (err as Error).message })
        }
      })
    }
    await queue.onIdle()
    return writes
  }

  /**
   * The full record: fields plus blobs, validated against the kind's lexicon (the PDS does not
   * validate custom lexicons). An optional blob that cannot be made is left out with a warning.
   * @throws when a required blob cannot be made or uploaded, or the record fails its lexicon.
   */
  private async buildRecord(plan: Planned, blobs: BlobUploader): Promise<Record<string, unknown>> {
    const value: Record<string, unknown> = { ...plan.fields }
    for (const blob of plan.col.blobs) {
      let input: BlobInput | null
      try {
        input = await blob.make(plan.item!, this.opts.ctx)
      } catch (err) {
        if (blob.required) throw new Error(`${blob.field}: ${(err as Error).message}`, { cause: err })
        this.opts.recorder.warning({ kind: plan.col.kind, id: idOf(plan), repo: this.repo, reason: `${blob.field} left out: ${(err as Error).message}` })
        continue
      }
      if (!input) continue
      try {
        value[blob.field] = await blobs.upload(input)
      } catch (err) {
        throw Object.assign(new Error(`${blob.field}: ${(err as Error).message}`), { status: (err as { status?: number }).status })
      }
    }
    const valid = lexicons.validate(plan.col.nsid, jsonToLex(value as never))
    if (!valid.success) throw new Error(`record fails ${plan.col.nsid}: ${valid.error.message}`)
    return value
  }

  /**
   * Applies a batch's writes in one `applyWrites`; a failing batch is retried write by write, so
   * one bad record loses nothing else. A blob the ledger remembered but the PDS does not have (a
   * run killed while sending it, or the PDS expired it) gets `BlobNotFound` naming its CID: that
   * blob alone is forgotten and the batch rebuilt (sending just that one), as often as the batch
   * has blobs. A mismatched MIME type (`InvalidMimeType`) forgets the batch's blobs once.
   */
  private async applyWrites(writes: PlannedWrite[], blobs: BlobUploader, retries = blobs.count): Promise<Map<Planned, WriteResult>> {
    const written = new Map<Planned, WriteResult>()
    const apply = async (batch: PlannedWrite[]) => {
      const results = await this.client.applyWrites(batch.map((w) => w.write))
      batch.forEach(({ plan }, i) => {
        written.set(plan, results[i])
        this.outcome(plan, plan.action as Action, { uri: results[i].uri, reason: plan.detail })
      })
    }
    if (!writes.length) return written
    try {
      await apply(writes)
      return written
    } catch (err) {
      if (retries > 0 && blobs.forgetMissing(err)) return this.applyWrites(await this.rebuild(writes, blobs), blobs, retries - 1)
    }
    for (const one of writes) {
      try {
        await apply([one])
      } catch (err) {
        if (isTransient(err)) throw err // PDS down or overloaded: the run (or live mode) retries later
        one.plan.action = 'failed'
        this.outcome(one.plan, 'failed', { reason: `PDS refused ${one.write.action}: ${(err as Error).message}` })
      }
    }
    return written
  }

  private async rebuild(writes: PlannedWrite[], blobs: BlobUploader): Promise<PlannedWrite[]> {
    const out: PlannedWrite[] = []
    for (const w of writes) out.push(w.write.action === 'delete' ? w : { plan: w.plan, write: { ...w.write, value: await this.buildRecord(w.plan, blobs) } })
    return out
  }

  private outcome(p: Planned, action: Action, extra: Partial<Outcome> = {}) {
    this.opts.recorder.item({ kind: p.col.kind, id: idOf(p), repo: this.repo, action, ...extra })
  }
}

/**
 * The writes of a repo in batches: those needing no blob first (they are cheap), then the others;
 * each batch at most {@link MAX_WRITES_PER_CALL} writes and {@link BLOB_ITEMS_PER_BATCH} records
 * with blobs to make.
 */
function batches(changing: Planned[]): Planned[][] {
  const needsBlobs = (p: Planned) => p.action !== 'delete' && p.col.blobs.length > 0
  const ordered = [...changing.filter((p) => !needsBlobs(p)), ...changing.filter(needsBlobs)]
  const out: Planned[][] = []
  let current: Planned[] = []
  let blobItems = 0
  for (const p of ordered) {
    if (current.length === MAX_WRITES_PER_CALL || (needsBlobs(p) && blobItems === BLOB_ITEMS_PER_BATCH)) {
      out.push(current)
      current = []
      blobItems = 0
    }
    current.push(p)
    if (needsBlobs(p)) blobItems++
  }
  if (current.length) out.push(current)
  return out
}

/**
 * Uploads blobs to one repo, once: a blob the ledger says this repo already received (same CID)
 * is referenced without uploading it again, so a restarted run re-sends nothing. The CIDs of a
 * batch are kept so a write the PDS refuses with `BlobNotFound` can drop them from the ledger.
 */
class BlobUploader {
  private readonly cids = new Set<string>()

  constructor(
    private readonly did: string,
    private readonly client: RepoClient,
    private readonly ledger: Ledger | undefined,
  ) {}

  async upload(input: BlobInput): Promise<Record<string, unknown>> {
    const cid = CID.createV1(RAW_CODEC, Digest.create(SHA256_CODE, crypto.createHash('sha256').update(input.bytes).digest())).toString()
    this.cids.add(cid)
    const known = this.ledger?.uploadedBlob(this.did, cid)
    if (known) return known
    // Noted before the upload: a run killed while the bytes are in flight must not send them
    // again. If the PDS never got them, the write says BlobNotFound and that blob is sent anew.
    const expected = { $type: 'blob', ref: { $link: cid }, mimeType: input.mimeType, size: input.bytes.length }
    this.ledger?.blobUploaded(this.did, cid, expected)
    try {
      const ref = await this.client.uploadBlob(input)
      if (!isDeepStrictEqual(ref, expected)) this.ledger?.blobUploaded(this.did, cid, ref) // the PDS sniffed another MIME type
      return ref
    } catch (err) {
      this.ledger?.blobLost(this.did, cid)
      throw err
    }
  }

  /** Blobs this batch referenced. */
  get count(): number {
    return this.cids.size
  }

  /**
   * After a write the PDS refused: when it names a blob of this batch it does not have
   * (`BlobNotFound: Could not find blob: <cid>`), forgets that one so it is sent again; on
   * `InvalidMimeType` (no CID named), forgets them all. Returns whether anything was forgotten.
   */
  forgetMissing(err: unknown): boolean {
    const { error, message } = err as { error?: string; message?: string }
    const missing = error === 'BlobNotFound' ? /Could not find blob: (\S+)/.exec(message ?? '')?.[1] : undefined
    const lost = missing ? [missing].filter((cid) => this.cids.has(cid)) : error === 'InvalidMimeType' ? [...this.cids] : []
    for (const cid of lost) this.ledger?.blobLost(this.did, cid)
    return lost.length > 0
  }
}

/** Keeps the ledger's map of MongoDB ids to record keys current (used to delete after a document is removed). */
function rememberWrites(ledger: Ledger | undefined, did: string, planned: Planned[], written: Map<Planned, WriteResult>) {
  if (!ledger) return
  for (const p of planned) {
    if (!p.item || p.finding === 'duplicate' || !written.has(p)) continue
    if (p.action === 'delete') ledger.forget(p.col.mongo, p.item.id)
    else ledger.remember(p.col.mongo, p.item.id, did, p.rkey)
  }
}

/** Writes the back-reference updates the plan's outcome calls for (see {@link backrefUpdate}). */
async function writeBackrefs(db: Db, planned: Planned[], written: Map<Planned, WriteResult>, force: boolean): Promise<number> {
  const ops = new Map<string, AnyBulkWriteOperation[]>()
  for (const p of planned) {
    if (!p.item || p.finding === 'duplicate' || p.action === 'failed') continue
    const result = written.get(p)
    const want = p.item.live ? (result?.cid ? { rkey: p.rkey, uri: result.uri, cid: result.cid } : undefined) : null
    if (want === undefined) continue // live but not mirrored (not ready, failed, or left to live mode): leave AC's fields alone
    if (want === null && !written.has(p) && p.existing) continue // the delete did not happen
    const update = backrefUpdate(p.col, force ? { ...p.item, backrefShapes: { atproto: { uri: '' } } } : p.item, want)
    if (update) ops.set(p.col.mongo, [...(ops.get(p.col.mongo) ?? []), { updateOne: { filter: { _id: new ObjectId(p.item.id) }, update } }])
  }
  let n = 0
  for (const [collection, batch] of ops) n += (await db.collection(collection).bulkWrite(batch, { ordered: false })).modifiedCount
  return n
}

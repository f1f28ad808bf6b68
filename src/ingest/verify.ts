import { encode as cborEncode } from '@atproto/lex-cbor'
import type { Cid } from '@atproto/lex-data'
import { lexToJson, type LexValue } from '@atproto/lexicon'
import { MST, MemoryBlockstore, RepoVerificationError, cborToLexRecord, def, formatDataKey, parseDataKey, readCarWithRoot } from '@atproto/repo'
import { CID } from 'multiformats/cid'
import { verifySig } from '../signature.js'

/** One record operation of a commit whose inclusion (or absence, for a delete) was proven. */
export interface VerifiedOp {
  action: 'create' | 'update' | 'delete'
  collection: string
  rkey: string
  /** The record's CID (creates and updates). */
  cid?: Cid
  /** The record as decoded from its block (creates and updates). */
  record?: unknown
}

/** A `#commit` message body, as the firehose sends it (com.atproto.sync.subscribeRepos#commit). */
export interface CommitBody {
  repo: string
  rev: string
  blocks: Uint8Array
  ops: Array<{ action: string; path: string; cid?: Cid | null }>
  /** When the host sequenced the commit (ISO 8601). */
  time?: string
}

/**
 * Verifies the ops of a `#commit` that `match` selects and returns them with their records:
 * the commit block's DID must be the repo's, its signature must verify against `didKey`, and each
 * op must be proven by the MST in `blocks` (the record's CID at its path, or no entry for a
 * delete). Ops that fail their proof are left out. The same checks as `verifyProofs` in
 * `@atproto/repo` (what `@atproto/sync`'s parseCommitAuthenticated uses), with the signature
 * checked by Node's native crypto instead of the pure-JS one: ~20× faster, which is most of the
 * ingest's cost per AC commit.
 * @throws RepoVerificationError on a wrong DID or signature; Error on a malformed CAR.
 */
export async function verifyCommit(body: CommitBody, didKey: string, match: (collection: string) => boolean): Promise<VerifiedOp[]> {
  const car = await readCarWithRoot(body.blocks)
  const blocks = new MemoryBlockstore(car.blocks)
  const commit = await blocks.readObj(car.root, def.commit)
  if (commit.did !== body.repo) throw new RepoVerificationError(`Invalid repo did: ${commit.did}`)
  const { sig, ...unsigned } = commit
  if (!(await verifySig(didKey, cborEncode(unsigned as never), sig))) throw new RepoVerificationError(`Invalid signature on commit: ${car.root.toString()}`)
  const mst = MST.load(blocks, commit.data)
  const out: VerifiedOp[] = []
  for (const op of body.ops) {
    const { collection, rkey } = parseDataKey(op.path)
    if (!match(collection)) continue
    const found = await mst.get(formatDataKey(collection, rkey))
    if (op.action === 'delete') {
      if (!found) out.push({ action: 'delete', collection, rkey })
    } else if ((op.action === 'create' || op.action === 'update') && op.cid && found?.equals(op.cid)) {
      const bytes = car.blocks.get(found)
      if (bytes) out.push({ action: op.action, collection, rkey, cid: found, record: cborToLexRecord(bytes) })
    }
  }
  return out
}

/** The same ops without any check (INGEST_VERIFY=false): records read from the CAR as sent. */
export async function unverifiedCommit(body: CommitBody, match: (collection: string) => boolean): Promise<VerifiedOp[]> {
  const car = await readCarWithRoot(body.blocks, { skipCidVerification: true })
  const out: VerifiedOp[] = []
  for (const op of body.ops) {
    const { collection, rkey } = parseDataKey(op.path)
    if (!match(collection)) continue
    if (op.action === 'delete') out.push({ action: 'delete', collection, rkey })
    const bytes = op.cid ? car.blocks.get(op.cid) : undefined
    if ((op.action === 'create' || op.action === 'update') && op.cid && bytes)
      out.push({ action: op.action, collection, rkey, cid: op.cid, record: cborToLexRecord(bytes) })
  }
  return out
}

/**
 * One op of a decoded commit in the form that crosses threads (structured clone keeps no
 * classes): the CID as a string, the record as lexicon JSON (`lexToJson`: CIDs as `{$link}`,
 * bytes as `{$bytes}`), which is what the index stores and validates.
 */
export interface DecodedOp {
  action: 'create' | 'update' | 'delete'
  collection: string
  rkey: string
  /** The record's CID, base32 (creates and updates). */
  cid?: string
  /** The record as lexicon JSON (creates and updates). */
  record?: Record<string, unknown>
}

/**
 * What {@link decodeCommit} needs of a `#commit`: only plain values, so it can be posted to a
 * worker thread; `blocks` is the CAR (its ArrayBuffer may be transferred).
 */
export interface CommitTask {
  repo: string
  blocks: Uint8Array
  /** The commit's ops as sent; `cid` as a string, null when absent or not a CID. */
  ops: Array<{ action: string; path: string; cid: string | null }>
  /** The repo's signing key (`did:key:…`, from identity resolution on the main thread); null: no checks (INGEST_VERIFY=false). */
  didKey: string | null
  /** The exact NSIDs whose ops are wanted (the others are skipped unread). */
  collections: string[]
}

/**
 * The outcome of {@link decodeCommit}, never a rejection (an Error's class does not survive a
 * thread boundary): the ops, or why the commit was refused: `rejected` for a wrong DID or
 * signature (RepoVerificationError: the key may have rotated, the caller retries with a fresh
 * one), otherwise malformed input (a CAR or block that does not decode, a bad CID).
 */
export type CommitOutcome = { ok: true; ops: DecodedOp[] } | { ok: false; rejected: boolean; message: string }

/** What a verify pool worker posts once its code is loaded (src/ingest/verify-pool.ts counts them). */
export const WORKER_READY = 'ac-verify-worker-ready'

/** The plain form of a `#commit` body for {@link decodeCommit} (`blocks` not copied). */
export function commitTask(body: CommitBody, didKey: string | null, collections: string[]): CommitTask {
  const ops = body.ops.map((op) => ({ action: op.action, path: op.path, cid: CID.asCID(op.cid)?.toString() ?? null }))
  return { repo: body.repo, blocks: body.blocks, ops, didKey, collections }
}

/**
 * {@link verifyCommit} (or, with no key, {@link unverifiedCommit}) of a {@link commitTask}, with
 * the records as lexicon JSON: pure (bytes in, ops out), the same on the main thread and on a
 * worker of the verify pool (src/ingest/verify-pool.ts). Never rejects: see {@link CommitOutcome}.
 */
export async function decodeCommit(task: CommitTask): Promise<CommitOutcome> {
  try {
    const wanted = new Set(task.collections)
    const match = (nsid: string) => wanted.has(nsid)
    const body: CommitBody = {
      repo: task.repo,
      rev: '',
      blocks: task.blocks,
      ops: task.ops.map((op) => ({ action: op.action, path: op.path, cid: op.cid === null ? null : (CID.parse(op.cid) as unknown as Cid) })),
    }
    const ops = task.didKey === null ? await unverifiedCommit(body, match) : await verifyCommit(body, task.didKey, match)
    return {
      ok: true,
      ops: ops.map((op) => ({
        action: op.action,
        collection: op.collection,
        rkey: op.rkey,
        ...(op.cid ? { cid: op.cid.toString(), record: lexToJson(op.record as LexValue) as Record<string, unknown> } : {}),
      })),
    }
  } catch (err) {
    return { ok: false, rejected: err instanceof RepoVerificationError, message: (err as Error)?.message ?? String(err) }
  }
}

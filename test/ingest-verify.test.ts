import { createRequire } from 'node:module'
import path from 'node:path'
import { P256Keypair, Secp256k1Keypair, verifySignature } from '@atproto/crypto'
import { MemoryBlockstore, Repo, WriteOpAction, blocksToCarFile, BlockMap } from '@atproto/repo'
import { describe, expect, it } from 'vitest'
import { verifyCommit } from '../src/ingest/verify.js'
import { SECP256K1_VERIFIER, verifySig } from '../src/signature.js'

/** Signs a one-record commit on a fresh in-memory repo; returns its #commit body and the key. */
async function signedCommit(keypair: Secp256k1Keypair | P256Keypair, did = 'did:plc:verifytest000000000000') {
  const repo = await Repo.create(new MemoryBlockstore(), did, keypair)
  const commit = await repo.formatCommit(
    {
      action: WriteOpAction.Create,
      collection: 'computer.aesthetic.mood',
      rkey: '3kabcdefghij2',
      record: { $type: 'computer.aesthetic.mood', mood: 'hi', when: '2025-01-01T00:00:00.000Z', ref: 'r' },
    },
    keypair,
  )
  const next = await repo.applyCommit(commit)
  const cid = (await next.data.get('computer.aesthetic.mood/3kabcdefghij2'))!
  const blocks = new BlockMap()
  blocks.addMap(commit.newBlocks)
  blocks.addMap(commit.relevantBlocks)
  return {
    body: {
      repo: did,
      rev: commit.rev,
      blocks: await blocksToCarFile(commit.cid, blocks),
      ops: [{ action: 'create', path: 'computer.aesthetic.mood/3kabcdefghij2', cid }],
    },
    key: keypair.did(),
  }
}

const all = () => true

/** The native signature check must agree with @atproto/crypto on every case the spec names. */
describe('commit verification (native crypto)', () => {
  it('accepts a commit signed by the key, with its record (secp256k1 and P-256)', async () => {
    for (const keypair of [await Secp256k1Keypair.create(), await P256Keypair.create()]) {
      const { body, key } = await signedCommit(keypair)
      const ops = await verifyCommit(body, key, all)
      expect(ops).toHaveLength(1)
      expect(ops[0]).toMatchObject({ action: 'create', collection: 'computer.aesthetic.mood', rkey: '3kabcdefghij2', record: { mood: 'hi' } })
    }
  })

  it('rejects a commit signed by another key, or claimed for another repo', async () => {
    const { body } = await signedCommit(await Secp256k1Keypair.create())
    const other = (await Secp256k1Keypair.create()).did()
    await expect(verifyCommit(body, other, all)).rejects.toThrow(/Invalid signature/)
    const { body: b2, key } = await signedCommit(await Secp256k1Keypair.create())
    await expect(verifyCommit({ ...b2, repo: 'did:plc:someoneelse0000000000000' }, key, all)).rejects.toThrow(/Invalid repo did/)
  })

  it('leaves out an op whose CID the MST does not prove', async () => {
    const { body, key } = await signedCommit(await Secp256k1Keypair.create())
    // a record claimed at a path the signed MST does not hold
    const ops = await verifyCommit({ ...body, ops: [{ action: 'create', path: 'computer.aesthetic.mood/3kzzzzzzzzzz2', cid: body.ops[0].cid }] }, key, all)
    expect(ops).toEqual([])
  })

  it('agrees with @atproto/crypto on valid, tampered and high-S signatures', async () => {
    for (const keypair of [await Secp256k1Keypair.create(), await P256Keypair.create()]) {
      const data = new TextEncoder().encode('commit bytes')
      const sig = await keypair.sign(data)
      expect(await verifySig(keypair.did(), data, sig)).toBe(true)
      expect(await verifySignature(keypair.did(), data, sig)).toBe(true)
      const tampered = Uint8Array.from(sig)
      tampered[10] ^= 1
      expect(await verifySig(keypair.did(), data, tampered)).toBe(false)
      // high-S twin of a valid signature: valid ECDSA, forbidden by the ATProto spec
      const n =
        keypair instanceof Secp256k1Keypair
          ? 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
          : 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
      const s = BigInt('0x' + Buffer.from(sig.subarray(32)).toString('hex'))
      const high = Uint8Array.from([...sig.subarray(0, 32), ...Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex')])
      expect(await verifySig(keypair.did(), data, high)).toBe(false)
      expect(await verifySignature(keypair.did(), data, high)).toBe(false)
      // service-auth JWTs accept it (allowMalleableSig), as @atproto/crypto does
      expect(await verifySig(keypair.did(), data, high, { allowMalleableSig: true })).toBe(true)
      expect(await verifySignature(keypair.did(), data, high, { allowMalleableSig: true })).toBe(true)
      // r or s at or past the group order: no valid signature
      const overflow = Uint8Array.from([...sig.subarray(0, 32), ...Buffer.from(n.toString(16).padStart(64, '0'), 'hex')])
      expect(await verifySig(keypair.did(), data, overflow, { allowMalleableSig: true })).toBe(false)
      expect(await verifySig(keypair.did(), data, Uint8Array.from([...Buffer.alloc(32, 0xff), ...sig.subarray(32)]))).toBe(false)
      expect(await verifySig(keypair.did(), data, Uint8Array.from([...Buffer.alloc(32, 0), ...sig.subarray(32)]))).toBe(false)
    }
  })

  it('checks secp256k1 with libsecp256k1 where it has a build, agreeing with @atproto/crypto over 200 signatures', async () => {
    // the secp256k1 package has a build for some platforms only (shipped, or compiled at install); elsewhere node:crypto checks them
    const require = createRequire(import.meta.url)
    let built = true
    try {
      require('node-gyp-build').path(path.dirname(require.resolve('secp256k1/package.json')))
    } catch {
      built = false
    }
    expect(SECP256K1_VERIFIER).toBe(built ? 'libsecp256k1' : 'node:crypto')
    const keypair = await Secp256k1Keypair.create()
    const other = await Secp256k1Keypair.create()
    for (let i = 0; i < 200; i++) {
      const data = crypto.getRandomValues(new Uint8Array(1 + (i % 300)))
      const sig = await keypair.sign(data)
      if (i % 3 === 1) sig[i % 64] ^= 1 << (i % 8)
      const did = i % 5 === 4 ? other.did() : keypair.did()
      expect(await verifySig(did, data, sig), `signature ${i}`).toBe(await verifySignature(did, data, sig))
    }
  })
})

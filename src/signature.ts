import crypto from 'node:crypto'
import { P256_JWT_ALG, SECP256K1_JWT_ALG, parseDidKey, verifySignature } from '@atproto/crypto'

/**
 * ATProto signatures checked with Node's native crypto: commit signatures (the ingest) and
 * service-auth JWTs (the feed generator). About 20 times faster than the pure-JS check.
 */

/** SPKI DER prefixes for an uncompressed (65-byte) EC point of each curve ATProto signs with. */
const SPKI_PREFIX: Record<string, Buffer> = {
  [SECP256K1_JWT_ALG]: Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex'),
  [P256_JWT_ALG]: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
}

/** Group orders, for the low-S rule (ATProto cryptography spec: high-S signatures are invalid). */
const ORDER: Record<string, bigint> = {
  [SECP256K1_JWT_ALG]: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
  [P256_JWT_ALG]: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
}

const keyCache = new Map<string, { alg: string; key: crypto.KeyObject }>()

/**
 * ECDSA over SHA-256 of `data` with the `did:key` `didKey` (secp256k1 or P-256), signature as
 * 64 bytes r‖s, low-S required, as @atproto/crypto's verifySignature; checked with node:crypto.
 * Falls back to @atproto/crypto for any other key type. The options are verifySignature's:
 * `jwtAlg` (`ES256K`, `ES256`) must be the key's algorithm; `allowMalleableSig` accepts high-S
 * signatures too (service-auth JWTs, as @atproto/xrpc-server's verifyJwt checks them).
 */
export async function verifySig(
  didKey: string,
  data: Uint8Array,
  sig: Uint8Array,
  opts: { jwtAlg?: string; allowMalleableSig?: boolean } = {},
): Promise<boolean> {
  const parsed = nativeKey(didKey)
  if (!parsed) return verifySignature(didKey, data, sig, opts)
  if (sig.length !== 64 || (opts.jwtAlg !== undefined && opts.jwtAlg !== parsed.alg)) return false
  const s = BigInt('0x' + Buffer.from(sig.subarray(32)).toString('hex'))
  if (s === 0n || (!opts.allowMalleableSig && s > ORDER[parsed.alg] / 2n)) return false
  return crypto.verify('sha256', data, { key: parsed.key, dsaEncoding: 'ieee-p1363' }, sig)
}

function nativeKey(didKey: string): { alg: string; key: crypto.KeyObject } | undefined {
  let cached = keyCache.get(didKey)
  if (cached) return cached
  const { jwtAlg, keyBytes } = parseDidKey(didKey) // the point, decompressed
  const prefix = SPKI_PREFIX[jwtAlg]
  if (!prefix || keyBytes.length !== 65) return undefined
  cached = { alg: jwtAlg, key: crypto.createPublicKey({ key: Buffer.concat([prefix, keyBytes]), format: 'der', type: 'spki' }) }
  if (keyCache.size > 100_000) keyCache.clear()
  keyCache.set(didKey, cached)
  return cached
}

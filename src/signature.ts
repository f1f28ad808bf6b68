import crypto from 'node:crypto'
import { createRequire } from 'node:module'
import { P256_JWT_ALG, SECP256K1_JWT_ALG, parseDidKey, verifySignature } from '@atproto/crypto'

/**
 * ATProto signatures checked natively: commit signatures (the ingest) and service-auth JWTs (the
 * feed generator). secp256k1 keys (what a PDS gives its accounts) by libsecp256k1, Bitcoin Core's
 * library, through the `secp256k1` package's prebuilt binding: about 60 µs a signature, where
 * OpenSSL's generic curve code (node:crypto) takes about 380 µs and the pure-JS check of
 * @atproto/crypto more still. P-256 keys by node:crypto (about 170 µs).
 */

/** libsecp256k1's ECDSA verification: `sig` r‖s (low-S only), `msg32` the SHA-256 digest, `pubkey` a 33- or 65-byte point. */
interface Libsecp256k1 {
  ecdsaVerify(sig: Uint8Array, msg32: Uint8Array, pubkey: Uint8Array): boolean
}

/** The binding, or undefined where it has no build for the platform (node:crypto checks secp256k1 then). */
const libsecp256k1 = ((): Libsecp256k1 | undefined => {
  try {
    return createRequire(import.meta.url)('secp256k1/bindings.js') as Libsecp256k1
  } catch {
    return undefined
  }
})()

/** What checks secp256k1 signatures in this process: `libsecp256k1`, or `node:crypto` where the binding has no build (the ingest logs it at start). */
export const SECP256K1_VERIFIER = libsecp256k1 ? 'libsecp256k1' : 'node:crypto'

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

interface NativeKey {
  alg: string
  key: crypto.KeyObject
  /** The uncompressed point (65 bytes). */
  point: Uint8Array
}

const keyCache = new Map<string, NativeKey>()

/**
 * ECDSA over SHA-256 of `data` with the `did:key` `didKey` (secp256k1 or P-256), signature as
 * 64 bytes r‖s, low-S required (ATProto cryptography spec), as @atproto/crypto's verifySignature.
 * secp256k1 is checked by libsecp256k1 when its binding loads (low-S signatures); P-256, high-S
 * signatures accepted with `allowMalleableSig`, and secp256k1 without the binding by node:crypto;
 * any other key type by @atproto/crypto. The options are verifySignature's: `jwtAlg` (`ES256K`,
 * `ES256`) must be the key's algorithm; `allowMalleableSig` accepts high-S signatures too
 * (service-auth JWTs, as @atproto/xrpc-server's verifyJwt checks them).
 * @throws Error when `didKey` is not a did:key (@atproto/crypto's parseDidKey).
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
  const highS = s > ORDER[parsed.alg] / 2n
  if (s === 0n || (!opts.allowMalleableSig && highS)) return false
  if (parsed.alg === SECP256K1_JWT_ALG && libsecp256k1 && !highS) return verifySecp256k1(libsecp256k1, parsed.point, data, sig)
  return crypto.verify('sha256', data, { key: parsed.key, dsaEncoding: 'ieee-p1363' }, sig)
}

/** libsecp256k1's check of `sig` over SHA-256 of `data` (s already below half the group order). An r at or past the group order would make the binding throw; it and an r of 0 are invalid signatures. */
function verifySecp256k1(lib: Libsecp256k1, point: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean {
  const r = BigInt('0x' + Buffer.from(sig.subarray(0, 32)).toString('hex'))
  if (r === 0n || r >= ORDER[SECP256K1_JWT_ALG]) return false
  return lib.ecdsaVerify(sig, crypto.createHash('sha256').update(data).digest(), point)
}

function nativeKey(didKey: string): NativeKey | undefined {
  let cached = keyCache.get(didKey)
  if (cached) return cached
  const { jwtAlg, keyBytes } = parseDidKey(didKey) // the point, decompressed
  const prefix = SPKI_PREFIX[jwtAlg]
  if (!prefix || keyBytes.length !== 65) return undefined
  cached = { alg: jwtAlg, point: keyBytes, key: crypto.createPublicKey({ key: Buffer.concat([prefix, keyBytes]), format: 'der', type: 'spki' }) }
  if (keyCache.size > 100_000) keyCache.clear()
  keyCache.set(didKey, cached)
  return cached
}

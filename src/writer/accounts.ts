import { isValidDid } from '@atproto/syntax'
import type { Db, Document } from 'mongodb'
import type { Logger } from '../log.js'
import type { AccountCredentials } from './repo.js'

/** A PDS account from AC's `users` collection. */
export interface Account extends AccountCredentials {
  /** `users._id`: the Auth0 subject, or `art-guest` for the guest account. */
  user: string
}

/**
 * Every AC user with a PDS account, by `users._id`. Reads `users.atproto.{did, handle,
 * password}` (docs/data-model.md); a user whose `atproto` is unset has no account (AC unsets it
 * when the PDS account is deleted). Malformed entries are logged by `_id` and left out.
 * Passwords stay in memory only and are never logged.
 */
export async function loadAccounts(db: Db, log: Logger): Promise<Map<string, Account>> {
  const accounts = new Map<string, Account>()
  const cursor = db.collection('users').find({ 'atproto.did': { $exists: true } }, { projection: { atproto: 1 } })
  for await (const doc of cursor) {
    const account = parseAccount(doc, log)
    if (account) accounts.set(account.user, account)
  }
  return accounts
}

/** The PDS account of one `users._id`, read afresh (live mode), or undefined when it has none. */
export async function findAccount(db: Db, user: string, log: Logger): Promise<Account | undefined> {
  const doc = await db.collection('users').findOne({ _id: user as never }, { projection: { atproto: 1 } })
  return doc ? parseAccount(doc, log) : undefined
}

/** The account whose repo is `did`, or undefined. */
export async function findAccountByDid(db: Db, did: string, log: Logger): Promise<Account | undefined> {
  const doc = await db.collection('users').findOne({ 'atproto.did': did }, { projection: { atproto: 1 } })
  return doc ? parseAccount(doc, log) : undefined
}

/** `users.atproto` of one document as an account; a malformed one is logged (at debug: `_id` is private) and left out. */
function parseAccount(doc: Document, log: Logger): Account | undefined {
  if (!doc.atproto) return undefined
  const { did, handle, password } = doc.atproto as Record<string, unknown>
  const user = String(doc._id)
  if (typeof did !== 'string' || !isValidDid(did)) {
    log.warn({ field: 'atproto.did' }, 'a user has an invalid DID; skipped')
    log.debug({ user }, 'the user with the invalid DID')
    return undefined
  }
  if (typeof password !== 'string' || !password) {
    log.warn({ did, field: 'atproto.password' }, 'user has no PDS password; skipped')
    return undefined
  }
  return { user, did, handle: typeof handle === 'string' ? handle : undefined, password }
}

import { isValidDid } from '@atproto/syntax'
import type { Db } from 'mongodb'
import type { Logger } from '../log.js'
import type { AccountCredentials } from './repo.js'

/** A PDS account from AC's `users` collection. */
export interface Account extends AccountCredentials {
  /** `users._id`: the Auth0 subject, or `art-guest` for the guest account. */
  user: string
}

/**
 * Every AC user with a PDS account, by `users._id`. Reads `users.atproto.{did, handle,
 * password}` (ac-data-model.md); a user whose `atproto` is unset has no account (AC unsets it
 * when the PDS account is deleted). Malformed entries are logged by `_id` and left out.
 * Passwords stay in memory only and are never logged.
 */
export async function loadAccounts(db: Db, log: Logger): Promise<Map<string, Account>> {
  const accounts = new Map<string, Account>()
  const cursor = db.collection('users').find({ 'atproto.did': { $exists: true } }, { projection: { atproto: 1 } })
  for await (const doc of cursor) {
    const { did, handle, password } = (doc.atproto ?? {}) as Record<string, unknown>
    const user = String(doc._id)
    if (typeof did !== 'string' || !isValidDid(did)) {
      log.warn({ user, field: 'atproto.did' }, 'user has an invalid DID; skipped')
      continue
    }
    if (typeof password !== 'string' || !password) {
      log.warn({ user, field: 'atproto.password' }, 'user has no PDS password; skipped')
      continue
    }
    accounts.set(user, { user, did, handle: typeof handle === 'string' ? handle : undefined, password })
  }
  return accounts
}

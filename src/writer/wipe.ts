import type { Db } from 'mongodb'
import { mirrored, type Kind } from '../collections/index.js'
import type { Logger } from '../log.js'
import type { Account } from './accounts.js'
import { MAX_WRITES_PER_CALL, RepoClient } from './repo.js'

export interface WipeReport {
  did: string
  deleted: Record<string, number>
  backrefsCleared: number
}

/**
 * Deletes every record of the selected kinds from one account's repo and clears the
 * back-references (`atproto`, and `at` for tapes) of that owner's MongoDB documents, so a
 * later `restore` (a backfill for that user) mirrors them afresh at their deterministic keys.
 * `user` is the `users._id` (AC's guest account owns the anonymous documents).
 */
export async function wipe(opts: { db: Db; pdsUrl: string; account: Account; guestUser: string; only?: Kind[]; log: Logger }): Promise<WipeReport> {
  const client = await RepoClient.login(opts.pdsUrl, opts.account, opts.log)
  const report: WipeReport = { did: opts.account.did, deleted: {}, backrefsCleared: 0 }
  const owner = opts.account.user === opts.guestUser ? { user: { $exists: false } } : { user: opts.account.user }
  for (const col of mirrored.filter((c) => !opts.only || opts.only.includes(c.kind))) {
    const records = await client.listRecords(col.nsid)
    for (let i = 0; i < records.length; i += MAX_WRITES_PER_CALL) {
      await client.applyWrites(records.slice(i, i + MAX_WRITES_PER_CALL).map((r) => ({ action: 'delete' as const, collection: col.nsid, rkey: r.rkey })))
    }
    report.deleted[col.kind] = records.length
    const res = await opts.db
      .collection(col.mongo)
      .updateMany({ ...owner, $or: [{ atproto: { $exists: true } }, { at: { $exists: true } }] }, { $unset: { atproto: '', at: '' } })
    report.backrefsCleared += res.modifiedCount
    opts.log.info({ did: opts.account.did, kind: col.kind, deleted: records.length }, 'wiped')
  }
  return report
}

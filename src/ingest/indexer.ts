import { jsonToLex, lexToJson, type LexValue } from '@atproto/lexicon'
import type { Event } from '@atproto/sync'
import { byNsid, type Collection } from '../collections/index.js'
import type { IndexDb } from '../db/index.js'
import { lexicons } from '../lexicon/lexicons.js'
import type { Logger } from '../log.js'
import type { Identity } from './identity.js'

/** One change to the index, collected from firehose events and committed in batches. */
export type IndexOp =
  | { type: 'put'; uri: string; did: string; kind: string; rkey: string; cid: string; rev: string; code: string | null; sortAt: string; record: string }
  | { type: 'quarantine'; uri: string; cid: string; did: string; collection: string; rev: string; reason: string; record: string }
  | { type: 'delete'; uri: string; rev: string }
  | { type: 'actor'; did: string; handle: string | null; pds: string | null; trusted: boolean }
  | { type: 'status'; did: string; status: string | null }

export interface IndexerOptions {
  db: IndexDb
  identity: Identity
  /** Origins of the PDSes whose repos may own short codes (design.md, code authority). */
  trustedPds: string[]
  log: Logger
}

/**
 * Turns firehose events into index operations and commits them with the cursor in one SQLite
 * transaction. Every operation is idempotent by uri and guarded by the repo rev, so replaying
 * events (after a crash or a reconnect) changes nothing.
 */
export class Indexer {
  private readonly knownActors = new Set<string>()

  constructor(private readonly opts: IndexerOptions) {}

  /** The operations for one event (a commit op, identity or account event). Never throws on bad records. */
  async opsFor(evt: Event): Promise<IndexOp[]> {
    switch (evt.event) {
      case 'create':
      case 'update': {
        const col = byNsid.get(evt.collection) // exact NSID: the firehose filter is a prefix match
        if (!col) return []
        return [...(await this.actorOps(evt.did)), this.recordOp(col, evt.did, evt.rkey, evt.cid.toString(), evt.rev, evt.record)]
      }
      case 'delete':
        if (!byNsid.has(evt.collection)) return []
        return [{ type: 'delete', uri: evt.uri.toString(), rev: evt.rev }]
      case 'identity':
        return this.actorOps(evt.did, true)
      case 'account':
        return [{ type: 'status', did: evt.did, status: evt.active ? null : (evt.status ?? 'inactive') }]
      default:
        return []
    }
  }

  /** A valid record becomes a `put`; one that fails its lexicon after normalising goes to quarantine. */
  recordOp(col: Collection, did: string, rkey: string, cid: string, rev: string, raw: unknown): IndexOp {
    const uri = `at://${did}/${col.nsid}/${rkey}`
    const json = lexToJson(raw as LexValue) as Record<string, unknown>
    const record = col.normalize(json)
    const reason = validationError(col, record)
    if (reason) return { type: 'quarantine', uri, cid, did, collection: col.nsid, rev, reason, record: JSON.stringify(json) }
    const code = col.codePrefix && typeof record.code === 'string' ? record.code : null
    return { type: 'put', uri, did, kind: col.kind, rkey, cid, rev, code, sortAt: new Date(record.when as string).toISOString(), record: JSON.stringify(record) }
  }

  private async actorOps(did: string, refresh = false): Promise<IndexOp[]> {
    if (this.knownActors.has(did) && !refresh) return []
    const { handle, pds } = await this.opts.identity.resolve(did, refresh)
    this.knownActors.add(did)
    return [{ type: 'actor', did, handle, pds, trusted: pds !== null && this.opts.trustedPds.includes(pds) }]
  }

  /** Marks the ingest alive for `service` without moving its cursor (heartbeat while idle). */
  async touch(service: string): Promise<void> {
    await this.opts.db.updateTable('cursor').set({ updatedAt: new Date().toISOString() }).where('service', '=', service).execute()
  }

  /** Commits `ops` and the cursor (`seq` on `service`) in one transaction. */
  async commit(ops: IndexOp[], service: string, seq: number, eventTime: string | null): Promise<void> {
    const now = new Date().toISOString()
    await this.opts.db.transaction().execute(async (trx) => {
      for (const op of ops) {
        switch (op.type) {
          case 'put': {
            const { type: _, ...row } = op
            await trx
              .insertInto('item')
              .values({ ...row, indexedAt: now })
              .onConflict((oc) =>
                oc
                  .column('uri')
                  .doUpdateSet((eb) => ({
                    cid: eb.ref('excluded.cid'),
                    rev: eb.ref('excluded.rev'),
                    code: eb.ref('excluded.code'),
                    sortAt: eb.ref('excluded.sortAt'),
                    record: eb.ref('excluded.record'),
                  }))
                  .where('item.rev', '<=', (eb) => eb.ref('excluded.rev')),
              )
              .execute()
            await trx.deleteFrom('quarantine').where('uri', '=', op.uri).execute()
            break
          }
          case 'quarantine': {
            const { type: _, rev, ...row } = op
            await trx.deleteFrom('item').where('uri', '=', op.uri).where('rev', '<=', rev).execute()
            await trx
              .insertInto('quarantine')
              .values({ ...row, firstSeen: now, lastSeen: now })
              .onConflict((oc) => oc.column('uri').doUpdateSet({ cid: op.cid, reason: op.reason, record: op.record, lastSeen: now }))
              .execute()
            this.opts.log.warn({ uri: op.uri, reason: op.reason }, 'record quarantined')
            break
          }
          case 'delete':
            await trx.deleteFrom('item').where('uri', '=', op.uri).where('rev', '<=', op.rev).execute()
            await trx.deleteFrom('quarantine').where('uri', '=', op.uri).execute()
            break
          case 'actor':
            await trx
              .insertInto('actor')
              .values({ did: op.did, handle: op.handle, pds: op.pds, trusted: op.trusted ? 1 : 0, status: null, updatedAt: now })
              .onConflict((oc) => oc.column('did').doUpdateSet({ handle: op.handle, pds: op.pds, trusted: op.trusted ? 1 : 0, updatedAt: now }))
              .execute()
            break
          case 'status':
            if (op.status === 'deleted') {
              await trx.deleteFrom('item').where('did', '=', op.did).execute()
              await trx.deleteFrom('quarantine').where('did', '=', op.did).execute()
            }
            await trx.updateTable('actor').set({ status: op.status, updatedAt: now }).where('did', '=', op.did).execute()
            break
        }
      }
      await trx
        .insertInto('cursor')
        .values({ service, seq, eventTime, updatedAt: now })
        .onConflict((oc) => oc.column('service').doUpdateSet({ seq, eventTime, updatedAt: now }))
        .execute()
    })
  }
}

/**
 * Why `record` fails its lexicon, or null. Besides `@atproto/lexicon` validation, checks each
 * blob's `accept` and `maxSize` from the lexicon, which that validator does not.
 */
export function validationError(col: Collection, record: Record<string, unknown>): string | null {
  const result = lexicons.validate(col.nsid, jsonToLex(record as never))
  if (!result.success) return result.error.message
  const def = lexicons.getDefOrThrow(col.nsid) as { record: { properties: Record<string, { type: string; accept?: string[]; maxSize?: number }> } }
  for (const [field, prop] of Object.entries(def.record.properties)) {
    const blob = record[field] as { mimeType?: string; size?: number } | undefined
    if (prop.type !== 'blob' || !blob) continue
    if (prop.accept && !prop.accept.some((a) => a === blob.mimeType || (a.endsWith('/*') && blob.mimeType?.startsWith(a.slice(0, -1))))) {
      return `Record/${field} mimeType ${blob.mimeType} is not one of ${prop.accept.join(', ')}`
    }
    if (prop.maxSize !== undefined && (blob.size ?? 0) > prop.maxSize) return `Record/${field} is ${blob.size} bytes, more than ${prop.maxSize}`
  }
  return null
}

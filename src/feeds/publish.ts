import { createHash } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import { lexicons as bskyLexicons } from '@atproto/api'
import { jsonToLex } from '@atproto/lexicon'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { JsonBlob } from '../collections/index.js'
import type { Logger } from '../log.js'
import type { HostedAccount } from '../writer/bsky-account.js'
import { RepoClient } from '../writer/repo.js'
import { feedAvatar } from './avatar.js'
import { FEEDS, FEED_GENERATOR_COLLECTION, feedUri } from './definitions.js'

/** What `feeds publish` did to one feed's record. */
export interface PublishedFeed {
  rkey: string
  uri: string
  action: 'create' | 'update' | 'unchanged'
}

/**
 * Makes the `app.bsky.feed.generator` records of `account`'s repo match FEEDS
 * (src/feeds/definitions.ts): `did` the feed generator's `serviceDid`, `displayName`,
 * `description` and `avatar` (src/feeds/avatar.ts). Idempotent: a record that already holds all
 * of it is left alone (its `createdAt` kept; an avatar already uploaded is recognised by its CID),
 * so a second run writes nothing. Records are checked against Bluesky's lexicon before writing.
 * @throws when the login fails or the PDS refuses a write (the message names the feed).
 */
export async function publishFeeds(opts: { account: HostedAccount; serviceDid: string; log: Logger }): Promise<PublishedFeed[]> {
  const client = await RepoClient.login(opts.account.pdsUrl, opts.account.credentials, opts.log)
  const out: PublishedFeed[] = []
  for (const def of FEEDS) {
    const uri = feedUri(client.did, def)
    const existing = await client.getRecord(FEED_GENERATOR_COLLECTION, def.rkey)
    const avatarBytes = await feedAvatar(def)
    const uploaded = existing?.value.avatar as JsonBlob | undefined
    const fields = {
      $type: FEED_GENERATOR_COLLECTION,
      did: opts.serviceDid,
      displayName: def.displayName,
      description: def.description,
      createdAt: typeof existing?.value.createdAt === 'string' ? existing.value.createdAt : new Date().toISOString(),
    }
    if (existing && uploaded?.ref?.$link === blobCid(avatarBytes) && isDeepStrictEqual(existing.value, { ...fields, avatar: uploaded })) {
      out.push({ rkey: def.rkey, uri, action: 'unchanged' })
      continue
    }
    const value = { ...fields, avatar: await client.uploadBlob({ bytes: avatarBytes, mimeType: 'image/png' }) }
    const valid = bskyLexicons.validate(FEED_GENERATOR_COLLECTION, jsonToLex(value))
    if (!valid.success) throw new Error(`feed ${def.rkey}: record fails ${FEED_GENERATOR_COLLECTION}: ${valid.error.message}`)
    const action = existing ? 'update' : 'create'
    try {
      await client.applyWrites([{ action, collection: FEED_GENERATOR_COLLECTION, rkey: def.rkey, value }])
    } catch (err) {
      throw new Error(`feed ${def.rkey}: the PDS refused the ${action}: ${(err as Error).message}`, { cause: err })
    }
    opts.log.info({ uri, action }, 'feed generator record written')
    out.push({ rkey: def.rkey, uri, action })
  }
  return out
}

/** The CID a PDS gives a blob of these bytes: CIDv1, raw codec, SHA-256. */
function blobCid(bytes: Uint8Array): string {
  return CID.createV1(0x55, Digest.create(0x12, createHash('sha256').update(bytes).digest())).toString()
}

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { TestNetwork } from '@atproto/dev-env'
import { tuneSequencer } from '../../src/dev/network.js'
import { startPostgres } from './postgres.js'

/** Bluesky's network in-process, with its AppView, and how to stop it. */
export interface BskyNetwork {
  network: TestNetwork
  close(): Promise<void>
}

/**
 * `@atproto/dev-env`'s TestNetwork: PLC, a PDS and Bluesky's own AppView (with bsync and ozone)
 * in-process on loopback, over a throwaway PostgreSQL (test/support/postgres.ts) in a schema of
 * its own. What it needs besides: `REDIS_HOST` set (asserted, never connected to) and a `TMPDIR`
 * of its own (its PDS leaves folders there), both restored on close. Its AppView resolves did:web
 * feed generators on `localhost` over plain http, so a feed generator listening on 127.0.0.1
 * answers it.
 */
export async function startBskyNetwork(): Promise<BskyNetwork> {
  const pg = await startPostgres()
  const saved = { TMPDIR: process.env.TMPDIR, REDIS_HOST: process.env.REDIS_HOST }
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-bsky-'))
  process.env.TMPDIR = tmp
  process.env.REDIS_HOST ??= '127.0.0.1:6379'
  const restore = async () => {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    await pg.stop()
    await fs.rm(tmp, { recursive: true, force: true })
  }
  try {
    const { TestNetwork } = await import('@atproto/dev-env')
    const schema = `ac_${Array.from({ length: 10 }, () => 'abcdefghijklmnopqrstuvwxyz'[Math.floor(Math.random() * 26)]).join('')}`
    const network = await TestNetwork.create({ dbPostgresUrl: pg.url, dbPostgresSchema: schema })
    tuneSequencer(network)
    return {
      network,
      async close() {
        try {
          await network.close()
        } finally {
          await restore()
        }
      },
    }
  } catch (err) {
    await restore()
    throw err
  }
}

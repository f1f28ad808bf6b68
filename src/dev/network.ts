import path from 'node:path'
import type { TestNetworkNoAppView } from '@atproto/dev-env'
import { pdsHandleLabel } from '../writer/handles.js'

/** A local ATProto network: a PLC directory and a PDS on loopback (`@atproto/dev-env`). */
export interface LocalNetwork {
  plcUrl: string
  pdsUrl: string
  /** Creates an account `<name>.test` with a random password; returns its credentials. */
  createAccount(name: string): Promise<{ did: string; handle: string; password: string }>
  /** The dev-env network, for tests that need the PDS internals (admin auth, takedowns). */
  network: TestNetworkNoAppView
  /** Stops the PDS (an outage); its data stays on disk. */
  stopPds(): Promise<void>
  /** Starts the PDS again on the same port with the same data, after {@link stopPds}. */
  startPds(): Promise<void>
  close(): Promise<void>
}

/** Longest pause of the PDS sequencer between outbox polls when idle (the PDS default is 1 s). */
const SEQUENCER_MAX_IDLE_MS = 20

/**
 * Starts PLC and PDS in-process on free loopback ports. Dev and tests only: `@atproto/dev-env`
 * is a dev dependency. Rate limits are off, as in dev-env, unless `rateLimits`.
 */
export async function startNetwork(opts: { pdsPort?: number; rateLimits?: boolean } = {}): Promise<LocalNetwork> {
  const { TestNetworkNoAppView } = await import('@atproto/dev-env')
  const network = await TestNetworkNoAppView.create({
    pds: { ...(opts.pdsPort ? { port: opts.pdsPort } : {}), ...(opts.rateLimits ? { rateLimitsEnabled: true } : {}) },
  })
  tuneSequencer(network)
  const agent = network.pds.getAgent()
  let n = 0
  return {
    plcUrl: network.plc.url,
    pdsUrl: network.pds.url,
    network,
    async createAccount(name) {
      const handle = `${pdsHandleLabel(name, `ac${++n}`)}.test`
      const password = `dev-${crypto.randomUUID()}`
      const res = await agent.com.atproto.server.createAccount({ handle, password, email: `${handle}@example.com` })
      return { did: res.data.did, handle: res.data.handle, password }
    },
    async stopPds() {
      await network.pds.close()
    },
    async startPds() {
      const { TestPds } = await import('@atproto/dev-env')
      const { cfg } = network.pds.ctx
      const blobstore = cfg.blobstore as { location?: string }
      network.pds = await TestPds.create({
        didPlcUrl: network.plc.url,
        port: network.pds.port,
        dataDirectory: path.dirname(cfg.db.accountDbLoc),
        blobstoreDiskLocation: blobstore.location,
        ...(cfg.rateLimits.enabled ? { rateLimitsEnabled: true } : {}),
      })
      tuneSequencer(network)
    },
    close: () => network.close(),
  }
}

/** The PDS sequencer backs off up to 1 s when idle; cap it so firehose latency stays in milliseconds. */
export function tuneSequencer(network: TestNetworkNoAppView) {
  const seq = network.pds.ctx.sequencer as unknown as { triesWithNoResults: number; exponentialBackoff: () => Promise<void> }
  seq.exponentialBackoff = async function () {
    this.triesWithNoResults++
    await new Promise((r) => setTimeout(r, Math.min(2 ** this.triesWithNoResults, SEQUENCER_MAX_IDLE_MS)))
  }
}

import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import type { TestPds } from '@atproto/dev-env'
import { XrpcClient } from '@atproto/xrpc'
import sharp from 'sharp'
import { loadConfig, type Config } from '../../src/config.js'
import type { IndexDb } from '../../src/db/index.js'
import { startNetwork, type LocalNetwork } from '../../src/dev/network.js'
import type { RunningIngest } from '../../src/ingest/run.js'
import { lexicons } from '../../src/lexicon/lexicons.js'
import { createLogger, type Logger } from '../../src/log.js'
import { openMigratedIndex, runAppView, runIngest } from '../../src/services.js'
import { testIndex, type Backend, type TestIndex } from './backend.js'
export { waitFor } from '../../src/wait.js'

/** An account on one of the local PDSes, logged in. */
export interface Account {
  did: string
  handle: string
  agent: AtpAgent
}

/**
 * The AppView's world, all real and on loopback: a PLC directory and AC's PDS (trusted), an
 * optional second PDS on the same PLC (untrusted: a squatter's), one ingest following both
 * firehoses into the index (SQLite, or PostgreSQL with `backend`), and the AppView serving it
 * (`runAppView`, as `serve` runs it).
 */
export interface AppViewStack {
  cfg: Config
  net: LocalNetwork
  /** The untrusted second PDS, when asked for. */
  pds2?: TestPds
  /** A connection of the test's own to the index. */
  index: IndexDb
  /** Where the index is, and its engine. */
  testIndex: TestIndex
  ingest: RunningIngest
  /** Base URL of the AppView. */
  url: string
  /** An `@atproto/xrpc` client with our lexicons: validates every answer against its output schema. */
  client: XrpcClient
  /** Creates `<name>.test` on AC's PDS, or on the second PDS with `untrusted`. */
  account(name: string, untrusted?: boolean): Promise<Account>
  close(): Promise<void>
}

/** ADMIN_PASSWORD of the test AppViews. */
export const OPERATOR_PASSWORD = 'test-operator-password'
/** Request headers carrying the operator credential (HTTP Basic, as a browser sends it). */
export const OPERATOR_HEADERS = { authorization: `Basic ${Buffer.from(`admin:${OPERATOR_PASSWORD}`).toString('base64')}` }

/**
 * `env` overrides the configuration (e.g. `RATE_LIMIT_MAX`); `firehoses` are further firehose
 * hosts to follow after the PDSes; `log` replaces the silent test logger; `backend` is the
 * index's engine (default SQLite).
 */
export async function startAppViewStack(
  opts: { secondPds?: boolean; env?: Record<string, string>; firehoses?: string[]; log?: Logger; backend?: Backend } = {},
): Promise<AppViewStack> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-appview-av-'))
  const log = opts.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent')
  const net = await startNetwork()
  let pds2: TestPds | undefined
  if (opts.secondPds) {
    const { TestPds, mockNetworkUtilities } = await import('@atproto/dev-env')
    pds2 = await TestPds.create({ didPlcUrl: net.plcUrl })
    mockNetworkUtilities(pds2)
  }
  const testIdx = await testIndex(opts.backend ?? 'sqlite', work)
  const cfg = loadConfig({
    PDS_URL: net.pdsUrl,
    PLC_URL: net.plcUrl,
    HANDLE_RESOLVER_URL: net.pdsUrl,
    ALLOW_PRIVATE_NETWORK: 'true',
    FIREHOSE_URL: [net.pdsUrl, ...(pds2 ? [pds2.url] : []), ...(opts.firehoses ?? [])].join(','),
    TRUSTED_PDS: net.pdsUrl,
    DATA_DIR: work,
    ...testIdx.env,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    ADMIN_PASSWORD: OPERATOR_PASSWORD,
    ...opts.env,
  })
  const index = await openMigratedIndex(cfg, log)
  const ingest = await runIngest(cfg, log)
  const { app, url } = await runAppView(cfg, log)
  let n = 0
  return {
    cfg,
    net,
    pds2,
    index,
    testIndex: testIdx,
    ingest,
    url,
    client: new XrpcClient(url, lexicons),
    async account(name, untrusted) {
      const service = untrusted ? pds2!.url : net.pdsUrl
      const agent = new AtpAgent({ service })
      const handle = `${name}-${++n}.test`
      const password = `pw-${crypto.randomUUID()}`
      await agent.createAccount({ handle, password, email: `${name}-${n}@example.com` })
      return { did: agent.session!.did, handle, agent }
    },
    async close() {
      await app.close()
      await ingest.stop()
      await index.destroy()
      await testIdx.stop()
      await pds2?.close()
      await net.close()
      await fs.rm(work, { recursive: true, force: true })
    },
  }
}

/** A PNG of `size`×`size` pixels of one colour (sharp). */
export function png(color: string, size = 16): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: color } })
    .png()
    .toBuffer()
}

/** Item fields of one kind for {@link publish}; `when` defaults to now. */
export type ItemSpec =
  | { kind: 'painting'; code: string; when?: string; thumbnail?: Buffer }
  | { kind: 'mood'; mood: string; when?: string }
  | { kind: 'piece'; slug: string; when?: string }
  | { kind: 'kidlisp'; code: string; source: string; when?: string }
  | { kind: 'tape'; code: string; when?: string }

/**
 * Publishes an AC record, as AC's writer shapes them (lexicons/computer/aesthetic/<kind>.json),
 * into the account's repo; blobs (painting thumbnail, tape video) are uploaded first.
 * Resolves to the record's uri and cid.
 */
export async function publish(account: Account, spec: ItemSpec): Promise<{ uri: string; cid: string }> {
  const { kind, when = new Date().toISOString(), ...fields } = spec
  const ref = crypto.randomUUID().replace(/-/g, '').slice(0, 24)
  const upload = async (bytes: Uint8Array, encoding: string) => (await account.agent.com.atproto.repo.uploadBlob(bytes, { encoding })).data.blob
  const record: Record<string, unknown> = { $type: `computer.aesthetic.${kind}`, when, ref }
  if (spec.kind === 'painting') {
    Object.assign(record, {
      slug: `2025.1.1.0.0.0.${spec.code}`,
      code: spec.code,
      imageUrl: `https://aesthetic.computer/media/paintings/${spec.code}.png`,
      acUrl: `https://aesthetic.computer/#${spec.code}`,
    })
    if (spec.thumbnail) record.thumbnail = await upload(spec.thumbnail, 'image/png')
  } else if (spec.kind === 'tape') {
    Object.assign(record, {
      slug: `tape-${spec.code}`,
      code: spec.code,
      acUrl: `https://aesthetic.computer/!${spec.code}`,
      video: await upload(MP4_HEADER, 'video/mp4'),
    })
  } else {
    Object.assign(record, fields)
  }
  const res = await account.agent.com.atproto.repo.createRecord({ repo: account.did, collection: `computer.aesthetic.${kind}`, record, validate: false })
  return { uri: res.data.uri, cid: res.data.cid }
}

/** The first box of an MP4 file (`ftyp isom`): enough bytes for a blob the PDS types video/mp4. */
const MP4_HEADER = new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70, 0x69, 0x73, 0x6f, 0x6d, 0, 0, 2, 0, 0x69, 0x73, 0x6f, 0x6d, 0x69, 0x73, 0x6f, 0x32])

/** Whether the index holds `uri` (the ingest has committed it). */
export async function indexed(index: IndexDb, uri: string): Promise<boolean> {
  return !!(await index.selectFrom('item').select('uri').where('uri', '=', uri).executeTakeFirst())
}

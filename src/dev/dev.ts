import { spawnSync } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { MongoClient } from 'mongodb'
import { formatReport, onShutdown } from '../cli-support.js'
import { loadConfig } from '../config.js'
import { UsageError } from '../usage.js'
import type { Logger } from '../log.js'
import { openMigratedIndex, runAppView, runBackfill, runIngest, runLive, runPublishFeeds } from '../services.js'
import { localEnv } from './config.js'
import { startMediaServer } from './media-server.js'
import { startMongo } from './mongo-server.js'
import { startNetwork } from './network.js'
import { waitFor } from '../wait.js'
import { seedSamplePosts } from './sample-posts.js'
import { seedSample } from './sample.js'

/** The database `dev` seeds; dropped at start, so a real MONGODB_URI's `aesthetic` is never touched. */
export const DEV_DB = 'ac_appview_dev'

/**
 * `ac-appview dev`: starts MongoDB (mongo-java-server unless MONGODB_URI is set), PLC, PDS and
 * a media server on loopback; seeds AC-shaped sample data; runs the writer backfill, then
 * `writer live`; starts the ingest and the AppView with the feed generator (did:web:localhost%3A<port>);
 * publishes the feeds from a local AC account and makes sample posts about AC (shares, mood
 * mirrors, links), so every feed has posts; prints the AppView URL, MongoDB URI, codes and feeds
 * to try. Stops on SIGINT/SIGTERM.
 */
export async function runDev(opts: { scale: 'small' | 'ac'; port: number; log: Logger }): Promise<void> {
  const { log } = opts
  if (spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).error) {
    throw new UsageError(
      "dev needs ffmpeg (the sample's tapes are MP4s) and it is not on PATH: install it, e.g. sudo apt-get install -y ffmpeg (or run bash scripts/run.sh dev, which does)",
    )
  }
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-appview-dev-'))
  const stops: Array<() => Promise<unknown>> = []
  onShutdown(log, async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {})
    await fs.rm(work, { recursive: true, force: true })
  })

  const mongo = await startMongo({ dbName: DEV_DB })
  stops.push(() => mongo.stop())
  const net = await startNetwork()
  stops.push(() => net.close())
  await fs.mkdir(path.join(work, 'media'))
  const media = await startMediaServer({ dir: path.join(work, 'media') })
  stops.push(() => media.close())
  log.info({ mongo: mongo.external ? 'MONGODB_URI' : 'mongo-java-server', pds: net.pdsUrl, plc: net.plcUrl, media: media.url }, 'local network up')

  const client = await MongoClient.connect(mongo.uri)
  stops.push(() => client.close())
  const mongoDb = client.db(DEV_DB)
  await mongoDb.dropDatabase()
  const seeded = Date.now()
  await seedSample({
    db: mongoDb,
    mediaDir: path.join(work, 'media'),
    storageUrl: media.storageUrl,
    pdsUrl: net.pdsUrl,
    createAccount: net.createAccount,
    scale: opts.scale,
    log: (m) => log.info(m),
  })
  log.info({ seconds: (Date.now() - seeded) / 1000 }, 'sample data seeded')

  // AC's own account (publishes the feeds, posts shares and mood mirrors), and the feed generator
  // at did:web:localhost%3A<port>, as a Bluesky AppView on this machine would reach it.
  const acAccount = await net.createAccount('aesthetic')
  const cfg = loadConfig({
    ...process.env,
    ...localEnv({ mongoUri: mongo.uri, mongoDb: DEV_DB, pdsUrl: net.pdsUrl, plcUrl: net.plcUrl, mediaUrl: media.url, work }),
    PORT: String(opts.port),
    FEEDGEN_HOSTNAME: `localhost:${opts.port}`,
    AC_BSKY_DID: acAccount.did,
    AC_BSKY_PASSWORD: acAccount.password,
  })
  const index = await openMigratedIndex(cfg, log)
  stops.push(() => index.destroy())
  const ingest = await runIngest(cfg, log)
  stops.push(() => ingest.stop())
  const report = await runBackfill(cfg, log)
  process.stdout.write(formatReport(report))
  // From here on, changes made in MongoDB (e.g. with mongosh on MONGODB_URI) reach the AppView.
  const live = await runLive(cfg, log)
  stops.push(() => live.stop())
  const { app, url } = await runAppView(cfg, log, { operatorOpen: true })
  stops.push(() => app.close())

  const written = Object.values(report.counts).reduce((n, c) => n + c.create + c.update + c.unchanged, 0)
  await waitFor(
    'the index to catch up',
    async () =>
      Number(
        (
          await index
            .selectFrom('item')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst()
        )?.n,
      ) >= written,
    60_000,
  ).catch((err) => log.warn(err.message))
  const feeds = await runPublishFeeds(cfg, log)
  const posts = await seedSamplePosts({ cfg, log, db: mongoDb, acAccount })
  await waitFor(
    'the sample posts in the index',
    async () =>
      Number(
        (
          await index
            .selectFrom('post')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirst()
        )?.n,
      ) >= posts,
    60_000,
  ).catch((err) => log.warn(err.message))
  const codes = await index.selectFrom('item').select(['kind', 'code']).where('code', 'is not', null).orderBy('sortAt', 'desc').execute()
  const pick = (kind: string, prefix: string) =>
    codes
      .filter((c) => c.kind === kind)
      .slice(0, 3)
      .map((c) => prefix + c.code)
  const tryCodes = [...pick('painting', '#'), ...pick('kidlisp', '$'), ...pick('tape', '!')]
  process.stdout.write(
    [
      '',
      `AppView: ${url}`,
      `PDS:     ${net.pdsUrl}`,
      `MongoDB: ${mongo.uri} (database ${DEV_DB}; writer live mirrors your changes)`,
      `Codes to try: ${tryCodes.join('  ')}`,
      '',
      `  curl '${url}/xrpc/computer.aesthetic.media.resolveCode?code=${encodeURIComponent(tryCodes[0] ?? '#abc')}'`,
      `  curl '${url}/xrpc/computer.aesthetic.media.getFeed?kind=painting&limit=5'`,
      `  curl '${url}/xrpc/_health'`,
      '',
      `Feed generator ${cfg.feedgen!.serviceDid}, feeds published by ${acAccount.handle}:`,
      ...feeds.map((f) => `  ${f.uri}`),
      '',
      `  curl '${url}/.well-known/did.json'`,
      `  curl '${url}/xrpc/app.bsky.feed.getFeedSkeleton?feed=${encodeURIComponent(feeds[0].uri)}&limit=5'`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  )
}

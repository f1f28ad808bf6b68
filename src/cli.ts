#!/usr/bin/env node
import { Command, Option } from 'commander'
import cliProgress from 'cli-progress'
import { ConfigError, loadConfig, type Config } from './config.js'
import { createLogger, type Logger } from './log.js'
import { openMigratedIndex, parseKinds, runAppView, runBackfill, runIngest } from './services.js'
import { onShutdown, printReport } from './cli-support.js'

const program = new Command()
  .name('ac-appview')
  .description("Aesthetic Computer's ATProto backend: writer (MongoDB → PDS), ingest (firehose → SQLite), AppView (XRPC).\nConfiguration comes from environment variables; see the README.")
  .showHelpAfterError()

program
  .command('dev')
  .description('Run everything locally with no external services: PLC, PDS, MongoDB (mongo-java-server, or MONGODB_URI), sample AC data, writer backfill, ingest and AppView.')
  .addOption(new Option('--scale <scale>', 'sample size').choices(['small', 'ac']).default('small'))
  .option('--port <port>', 'AppView port', (v) => Number(v), 3000)
  .action(async (o: { scale: 'small' | 'ac'; port: number }) => {
    const { runDev } = await import('./dev/dev.js')
    await runDev({ scale: o.scale, port: o.port, log: logger() })
  })

const writer = program.command('writer').description('Mirror AC media from MongoDB into users\' repos on the PDS (needs MONGODB_URI and PDS_URL).')

writer
  .command('backfill')
  .description('Create, update and delete records so every repo matches MongoDB. Safe to re-run: a second run changes nothing. Exit code 1 when any item failed.')
  .option('--dry-run', 'print what would be created, updated and deleted; write nothing anywhere')
  .option('--user <handles...>', 'only these AC handles (@name)')
  .option('--anonymous', 'only anonymous items (the guest repo)')
  .option('--only <kinds>', 'only these kinds, comma-separated (painting,mood,piece,kidlisp,tape)', parseKinds)
  .option('--concurrency <n>', 'repos written at once (default WRITER_CONCURRENCY)', (v) => Number(v))
  .option('--json', 'print the report as JSON on stdout')
  .action(async (o: { dryRun?: boolean; user?: string[]; anonymous?: boolean; only?: ReturnType<typeof parseKinds>; concurrency?: number; json?: boolean }) => {
    const cfg = config()
    const log = logger(cfg)
    const bar = process.stderr.isTTY && !o.json ? new cliProgress.SingleBar({ format: 'repos {bar} {value}/{total} | {eta_formatted} left' }, cliProgress.Presets.shades_classic) : undefined
    const report = await runBackfill(cfg, log, {
      dryRun: o.dryRun,
      handles: o.user,
      anonymous: o.anonymous,
      only: o.only,
      concurrency: o.concurrency,
      onProgress(done, total) {
        if (!bar) return log.info({ done, total }, 'repos done')
        if (done === 1) bar.start(total, 0)
        bar.update(done)
        if (done === total) bar.stop()
      },
    })
    if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    else printReport(report)
    process.exitCode = Object.values(report.counts).some((c) => c.failed > 0) ? 1 : 0
  })

program
  .command('ingest')
  .description('Subscribe to the firehose (FIREHOSE_URL, default PDS_URL) and index computer.aesthetic.* records into INDEX_DB_PATH. Resumes from its stored cursor.')
  .action(async () => {
    const cfg = config()
    const log = logger(cfg)
    const db = await openMigratedIndex(cfg, log)
    const ingest = await runIngest(cfg, log, db)
    onShutdown(log, async () => {
      await ingest.stop()
      await db.destroy()
    })
  })

program
  .command('serve')
  .description('Serve the AppView (XRPC methods, /xrpc/_health, /metrics) on HOST:PORT from INDEX_DB_PATH.')
  .action(async () => {
    const cfg = config()
    const log = logger(cfg)
    const db = await openMigratedIndex(cfg, log)
    const { app, url } = await runAppView(cfg, log, db)
    log.info({ url }, 'AppView listening')
    onShutdown(log, async () => {
      await app.close()
      await db.destroy()
    })
  })

program
  .command('migrate')
  .description('Apply pending index migrations (migrations/) to INDEX_DB_PATH.')
  .action(async () => {
    const cfg = config()
    const db = await openMigratedIndex(cfg, logger(cfg))
    await db.destroy()
  })

function config(): Config {
  return loadConfig()
}

function logger(cfg?: Config): Logger {
  return createLogger(cfg?.LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info')
}

program.parseAsync().catch((err) => {
  process.stderr.write(`ac-appview: ${err instanceof ConfigError ? err.message : (err as Error).stack ?? err}\n`)
  process.exit(err instanceof ConfigError ? 2 : 1)
})

#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import cliProgress from 'cli-progress'
import { ConfigError, loadConfig, type Config } from './config.js'
import { createLogger, type Logger } from './log.js'
import type { Kind } from './collections/index.js'
import { formatAudit, formatProblemGroups, formatReport, onShutdown, table } from './cli-support.js'
import { PARTS, UsageError, parseKinds, parseParts, type PartName } from './usage.js'
import type { BackfillReport } from './writer/report.js'

/** The services, loaded when a command needs them (so `--help`, `status` and argument errors answer at once). */
const services = () => import('./services.js')

const program = new Command()
  .name('ac-appview')
  .description(
    "Aesthetic Computer's ATProto backend: writer (MongoDB → PDS), ingest (firehose → SQLite), AppView (XRPC).\nConfiguration comes from environment variables; see the README.",
  )
  .exitOverride()
  // Argument errors are one line (commander puts "Did you mean …?" on a second one).
  .configureOutput({ outputError: (message, write) => write(message.trimEnd().replace(/\n+/g, ' ') + '\n') })

program
  .command('dev')
  .description(
    'Run everything locally with no external services: PLC, PDS, MongoDB (mongo-java-server, or MONGODB_URI), sample AC data, writer backfill, ingest and AppView.',
  )
  .addOption(new Option('--scale <scale>', 'sample size').choices(['small', 'ac']).default('small'))
  .option('--port <port>', 'AppView port', (v) => Number(v), 3000)
  .action(async (o: { scale: 'small' | 'ac'; port: number }) => {
    const { runDev } = await import('./dev/dev.js')
    await runDev({ scale: o.scale, port: o.port, log: logger() })
  })

const writer = program.command('writer').description("Mirror AC media from MongoDB into users' repos on the PDS (needs MONGODB_URI and PDS_URL).")

/** Options shared by the writer commands that select items. */
interface SelectOptions {
  user?: string[]
  anonymous?: boolean
  only?: Kind[]
  since?: Date
  limit?: number
  concurrency?: number
  json?: boolean
  verbose?: boolean
}

/** An option's parser whose UsageError becomes commander's one-line argument error (exit 2). */
function asOption<T>(parse: (value: string) => T, value: string): T {
  try {
    return parse(value)
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

const kindsOption = (value: string): Kind[] => asOption(parseKinds, value)

function selectOptions(cmd: Command): Command {
  return cmd
    .option('--user <handles...>', 'only these users (@handle from AC, PDS handle, or users._id); the report covers only them')
    .option('--anonymous', 'only anonymous items (the guest repo)')
    .option('--only <kinds>', 'only these kinds, comma-separated (painting,mood,piece,kidlisp,tape)', kindsOption)
    .option('--since <date>', 'only items whose when is at or after this date (ISO 8601); orphans are then not judged', parseDate)
    .option('--limit <n>', 'at most n items, oldest first (the report covers only them); orphans are then not judged', parsePositive)
    .option('--concurrency <n>', 'repos handled at once (default WRITER_CONCURRENCY)', parsePositive)
    .option('--json', 'print the report as JSON on stdout')
    .option('--verbose', 'list every problem and change, not a few examples per reason')
}

function writerRequest(o: SelectOptions, log: Logger) {
  return {
    handles: o.user,
    anonymous: o.anonymous,
    only: o.only,
    since: o.since,
    limit: o.limit,
    concurrency: o.concurrency,
    onProgress: o.json ? undefined : progress(log),
  }
}

selectOptions(
  writer
    .command('backfill')
    .description(
      'Create, update and delete records so every repo (every account in users.atproto and the guest account) matches MongoDB; adopts records AC made earlier. Safe to re-run and to kill: a second run changes nothing, and a run after a killed one resumes it. Prints problems grouped by reason, then a table per kind. Exit code 1 when any item failed, 2 on bad arguments.',
    )
    .option('--dry-run', 'print what would be created, updated and deleted, per kind and user; write nothing anywhere')
    .option('--no-resume', 'compare every repo again even if the last run with these options was interrupted'),
).action(async (o: SelectOptions & { dryRun?: boolean; resume: boolean }) => {
  const cfg = config()
  const log = logger(cfg)
  printBackfill(await (await services()).runBackfill(cfg, log, { ...writerRequest(o, log), dryRun: o.dryRun, resume: o.resume }), o)
})

/** Prints a backfill report (JSON or the grouped text) and sets the exit code: 1 when an item failed. */
function printBackfill(report: BackfillReport, o: { json?: boolean; verbose?: boolean }) {
  process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report, o.verbose))
  process.exitCode = Object.values(report.counts).some((c) => c.failed > 0) ? 1 : 0
}

selectOptions(
  writer
    .command('audit')
    .description(
      'Compare MongoDB with each repo (every account, with items or not): missing, orphaned, duplicated (by ref), drifted, dangling back-references. Exit code 0 only when clean.',
    )
    .option('--fix', 'repair everything found, then audit again'),
).action(async (o: SelectOptions & { fix?: boolean }) => {
  const cfg = config()
  const log = logger(cfg)
  const report = await (await services()).runAudit(cfg, log, { ...writerRequest(o, log), fix: o.fix })
  process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : formatAudit(report, o.verbose))
  process.exitCode = (report.fix?.after ?? report).clean ? 0 : 1
})

writer
  .command('live')
  .description(
    'Follow MongoDB (change streams on the five collections and users, resumed from the ledger) and mirror every change within seconds; a reconcile pass every WRITER_RECONCILE_SECONDS catches anything missed. Stops cleanly on SIGINT/SIGTERM.',
  )
  .action(async () => {
    const cfg = config()
    const log = logger(cfg)
    const live = await (await services()).runLive(cfg, log)
    const metricsServer = await serveProcessMetrics(cfg, async () => live.writerStatus())
    onShutdown(log, async () => {
      metricsServer?.close()
      await live.stop()
    })
  })

writer
  .command('wipe')
  .description("Delete a user's records (all five kinds, or --only) from their repo and clear the back-references in MongoDB. Undo with restore.")
  .requiredOption('--handle <handle>', 'the user (@handle from AC, PDS handle, or users._id such as art-guest)')
  .option('--only <kinds>', 'only these kinds, comma-separated', kindsOption)
  .option('--json', 'print the report as JSON on stdout')
  .action(async (o: { handle: string; only?: Kind[]; json?: boolean }) => {
    const cfg = config()
    const report = await (await services()).runWipe(cfg, logger(cfg), o.handle, o.only)
    process.stdout.write(
      o.json
        ? JSON.stringify(report, null, 2) + '\n'
        : `wiped ${report.did}: ${Object.entries(report.deleted)
            .map(([k, n]) => `${n} ${k}`)
            .join(', ')}; ${report.backrefsCleared} back-references cleared\n`,
    )
  })

writer
  .command('restore')
  .description("Mirror a user's items again (a backfill for that user), e.g. after wipe.")
  .requiredOption('--handle <handle>', 'the user (@handle from AC, PDS handle, or users._id)')
  .option('--only <kinds>', 'only these kinds, comma-separated', kindsOption)
  .option('--json', 'print the report as JSON on stdout')
  .option('--verbose', 'list every problem, not a few examples per reason')
  .action(async (o: { handle: string; only?: Kind[]; json?: boolean; verbose?: boolean }) => {
    const cfg = config()
    const log = logger(cfg)
    printBackfill(await (await services()).runBackfill(cfg, log, { handles: [o.handle], only: o.only, onProgress: o.json ? undefined : progress(log) }), o)
  })

writer
  .command('status')
  .description(
    "The writer's latest runs from its ledger (DATA_DIR): mode, status (running, finished, or interrupted when its process died), counts; then the current problems by reason.",
  )
  .option('--json', 'print as JSON on stdout')
  .action(async (o: { json?: boolean }) => {
    const { Ledger } = await import('./writer/ledger.js')
    const ledger = new Ledger(config().DATA_DIR)
    try {
      const runs = ledger.runs()
      const groups = ledger.problemGroups()
      if (o.json) return void process.stdout.write(JSON.stringify({ runs, problems: groups }, null, 2) + '\n')
      const rows = runs.map((r) => [
        `#${r.id}`,
        r.mode,
        r.status,
        r.startedAt.slice(0, 19),
        r.finishedAt?.slice(0, 19) ?? '',
        Object.entries(r.counts)
          .filter(([, n]) => n)
          .map(([k, n]) => `${k} ${n}`)
          .join(', '),
      ])
      process.stdout.write([...table(['run', 'mode', 'status', 'started', 'finished', 'counts'], rows), '', formatProblemGroups(groups)].join('\n'))
    } finally {
      ledger.close()
    }
  })

writer
  .command('problems')
  .description(
    'The problems the writer sees now (one per item and reason, with first and last seen and how often), grouped by reason with counts. Operators only: it names Auth0 subjects of people without a PDS account.',
  )
  .option('--json', 'print every problem as JSON on stdout')
  .option('--verbose', 'list every item, not a few examples per reason')
  .action(async (o: { json?: boolean; verbose?: boolean }) => {
    const { Ledger } = await import('./writer/ledger.js')
    const ledger = new Ledger(config().DATA_DIR)
    try {
      process.stdout.write(
        o.json ? JSON.stringify(ledger.problems(), null, 2) + '\n' : formatProblemGroups(ledger.problemGroups(o.verbose ? Infinity : undefined), o.verbose),
      )
    } finally {
      ledger.close()
    }
  })

writer
  .command('share')
  .description(
    "Post an item to Bluesky as AC's scripts do: text, a link to AC, the image (paintings) or video (tapes). A second run, or a rerun after a crash, never posts twice: the post's rkey comes from the item and MongoDB keeps `bluesky {uri, cid, rkey}`. Quote the code in a shell: '#abc', '$abc', '!abc'.",
  )
  .argument('<code>', '#code painting, $code KidLisp or !code tape')
  .addOption(
    new Option('--as <who>', "post from the owner's account on AC's PDS, or from AC's own account (AC_BSKY_DID)")
      .choices(['owner', 'account'])
      .default('owner'),
  )
  .option('--unshare', 'delete the post (also for a nuked item) and forget it')
  .option('--json', 'print the report as JSON on stdout')
  .action(async (code: string, o: { as: 'owner' | 'account'; unshare?: boolean; json?: boolean }) => {
    const cfg = config()
    const report = await (await services()).runShare(cfg, logger(cfg), code, { as: o.as, unshare: o.unshare })
    process.stdout.write(
      o.json
        ? JSON.stringify(report, null, 2) + '\n'
        : `${report.action}: ${report.code}${report.uri ? ` ${report.uri}` : ''}${report.cid ? ` (cid ${report.cid})` : ''}\n`,
    )
  })

/** A progress bar with rate and ETA on a terminal; plain log lines otherwise. */
function progress(log: Logger) {
  if (!process.stderr.isTTY)
    return (done: number, total: number, items: number, itemsTotal: number) =>
      log.info({ repos: `${done}/${total}`, items: `${items}/${itemsTotal}` }, 'progress')
  const bar = new cliProgress.SingleBar(
    { format: 'items {bar} {value}/{total} | {rate}/s | ETA {eta_formatted} | repos {repos}', etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  )
  const started = Date.now()
  return (done: number, total: number, items: number, itemsTotal: number) => {
    if (done === 1) bar.start(itemsTotal, 0, { rate: '0', repos: '' })
    bar.update(items, { rate: (items / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(0), repos: `${done}/${total}` })
    if (done === total) bar.stop()
  }
}

function parseDate(v: string): Date {
  const d = new Date(v)
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`not a date: ${v}`)
  return d
}

function parsePositive(v: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`not a positive integer: ${v}`)
  return n
}

const ingestCmd = program
  .command('ingest')
  .description(
    "Subscribe to the firehose (FIREHOSE_URL, default PDS_URL; comma-separated for several hosts) and index computer.aesthetic.* records into the index (INDEX_DATABASE_URL, else INDEX_DB_PATH). Resumes from its stored cursor; backfills on first start and when the cursor is outside the host's window. On PostgreSQL run several: one leads (writes), the others stand by and take over within INGEST_FAILOVER_SECONDS. Serves /metrics on METRICS_PORT when set (ADMIN_PASSWORD required).",
  )
  .option('--backfill', 'also backfill now: list every repo of each host, fetch and verify it, and make the index match it (resumable)')
  .option('--cursor <seq>', 'replay from this firehose seq instead of the stored cursor', (v) => parseSeq(v))
  .action(async (o: { backfill?: boolean; cursor?: number }) => {
    const cfg = config()
    const log = logger(cfg)
    const ingest = await (await services()).runIngest(cfg, log, { backfill: o.backfill, startCursor: o.cursor })
    const metricsServer = await serveProcessMetrics(cfg)
    if (metricsServer) log.info({ address: metricsServer.address() }, 'ingest metrics at /metrics')
    onShutdown(log, async () => {
      metricsServer?.close()
      await ingest.stop()
    })
  })

ingestCmd
  .command('quarantine')
  .description('List the records held in quarantine (failed their lexicon after normalising): uri, reason, first and last seen.')
  .option('--json', 'print the list as JSON on stdout, with each raw record')
  .action(async (o: { json?: boolean }) => {
    const cfg = config()
    const db = await (await services()).openMigratedIndex(cfg, logger(cfg))
    const { listQuarantine, formatQuarantine } = await import('./ingest/quarantine.js')
    const entries = await listQuarantine(db)
    process.stdout.write(o.json ? JSON.stringify(entries, null, 2) + '\n' : formatQuarantine(entries))
    await db.destroy()
  })

/** A firehose seq: a non-negative integer. @throws Error otherwise. */
function parseSeq(value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`--cursor must be a non-negative integer, got ${value}`)
  return Number(value)
}

program
  .command('serve')
  .description(
    'Serve the AppView (XRPC methods, /xrpc/_health, /metrics, the dashboard) on HOST:PORT from the index (INDEX_DATABASE_URL, reading from INDEX_READ_URL when set, else INDEX_DB_PATH). Stateless: run any number behind a proxy on PostgreSQL. The dashboard shows the writer at WRITER_STATUS_URL when set.',
  )
  .action(async () => {
    const cfg = config()
    const log = logger(cfg)
    await (await (await services()).openMigratedIndex(cfg, log)).destroy()
    const { app, url } = await (await services()).runAppView(cfg, log)
    log.info({ url }, 'AppView listening')
    onShutdown(log, () => app.close())
  })

const feeds = program.command('feeds').description("AC's Bluesky feeds (src/feeds/definitions.ts), served by the AppView as a feed generator.")

feeds
  .command('publish')
  .description(
    'Create or update the app.bsky.feed.generator record of every feed (name, description, avatar) in the repo of AC_BSKY_DID (logging in with AC_BSKY_PASSWORD), pointing at the feed generator FEEDGEN_SERVICE_DID or did:web:FEEDGEN_HOSTNAME. Idempotent: records already right are left alone.',
  )
  .option('--json', 'print the result as JSON on stdout')
  .action(async (o: { json?: boolean }) => {
    const cfg = config()
    const published = await (await services()).runPublishFeeds(cfg, logger(cfg))
    process.stdout.write(o.json ? JSON.stringify(published, null, 2) + '\n' : published.map((f) => `${f.action.padEnd(9)}  ${f.uri}`).join('\n') + '\n')
  })

program
  .command('start')
  .description(
    'Run the service as AC deploys it: writer live, ingest and AppView in one process with one configuration (or --only some of them, to spread the parts over processes or machines). A part that fails is logged, shown in /xrpc/_health, the dashboard and ac_part_up, and restarted with backoff (1 s doubling to 5 min); the others go on. SIGTERM or SIGINT stops the writer, then the ingest, then the AppView (draining requests in flight).',
  )
  .option('--only <parts>', `run only these parts, comma-separated (${PARTS.join(', ')})`, (v) => asOption(parseParts, v))
  .action(async (o: { only?: PartName[] }) => {
    const cfg = config()
    const log = logger(cfg)
    const { runStart } = await import('./start.js')
    const started = await runStart(cfg, log, o.only)
    const metricsServer = o.only && !o.only.includes('appview') ? await serveProcessMetrics(cfg, started.writerStatus) : undefined
    onShutdown(log, async () => {
      metricsServer?.close()
      await started.stop()
    })
  })

program
  .command('doctor')
  .description(
    "Check a deployment before anything is written: MongoDB and its change streams, AC's collections, users with and without PDS accounts, the guest account, the PDS, logins for a sample of accounts (no writes), the PDS's rate limits, media for a sample of paintings, PLC and handle resolution, each firehose host and the stored cursor, DATA_DIR, the index's migrations. Prints a table of checks with what to do; exit code 1 when a blocking check fails.",
  )
  .option('--json', 'print the checks as JSON on stdout')
  .action(async (o: { json?: boolean }) => {
    const cfg = config()
    const { runDoctor, blocking } = await import('./doctor.js')
    const checks = await runDoctor(cfg, createLogger('silent'))
    if (o.json) process.stdout.write(JSON.stringify(checks, null, 2) + '\n')
    else {
      const mark = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: 'skip' }
      const rows = checks.map((c) => [c.name, mark[c.status], c.detail, c.fix ?? ''])
      process.stdout.write(table(['check', 'status', 'found', 'what to do'], rows).join('\n') + '\n')
      process.stdout.write(
        blocking(checks)
          ? `\n${checks.filter((c) => c.status === 'fail').length} blocking problem(s): fix them before the first backfill.\n`
          : '\nready: no blocking problem.\n',
      )
    }
    process.exitCode = blocking(checks) ? 1 : 0
  })

program
  .command('migrate')
  .description('Apply pending index migrations (migrations/) to the index: INDEX_DATABASE_URL (PostgreSQL) when set, else INDEX_DB_PATH (SQLite).')
  .action(async () => {
    const cfg = config()
    const log = logger(cfg)
    const { describeIndex } = await import('./db/index.js')
    await (await (await services()).openMigratedIndex(cfg, log)).destroy()
    log.info({ index: describeIndex(cfg.index) }, 'index migrations applied')
  })

/**
 * `/metrics` of this process on METRICS_PORT, behind ADMIN_PASSWORD, when METRICS_PORT is set;
 * with `writerStatus` (a process running the writer) also `/status` (WRITER_STATUS_URL of `serve`).
 */
async function serveProcessMetrics(cfg: Config, writerStatus?: () => Promise<unknown>) {
  if (cfg.METRICS_PORT === undefined) return undefined
  const { serveMetrics } = await import('./metrics.js')
  const { checkCredential } = await import('./appview/operator-auth.js')
  return serveMetrics(cfg.HOST, cfg.METRICS_PORT, (authorization) => checkCredential({ password: cfg.ADMIN_PASSWORD }, authorization), writerStatus)
}

function config(): Config {
  return loadConfig()
}

function logger(cfg?: Config): Logger {
  return createLogger(cfg?.LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info')
}

program.parseAsync().catch((err) => {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2) // commander printed the one-line message (or the help)
  const usage = err instanceof ConfigError || err instanceof UsageError
  process.stderr.write(`ac-appview: ${usage ? err.message : ((err as Error).stack ?? err)}\n`)
  process.exit(usage ? 2 : 1)
})

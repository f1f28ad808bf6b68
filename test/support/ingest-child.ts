/**
 * `ac-appview ingest` for the crash and failover tests, without the rest of the CLI: the same
 * configuration (environment), {@link runIngest} (which migrates, and on PostgreSQL campaigns for
 * the leader lock), and the same clean stop on SIGTERM. It
 * loads only the ingest's modules, so a restart takes a third of the CLI's start-up time, which
 * matters for a test that restarts it thirty times. Arguments: `--backfill`.
 */
import { loadConfig } from '../../src/config.js'
import { runIngest } from '../../src/ingest/run.js'
import { createLogger } from '../../src/log.js'

const cfg = loadConfig()
const log = createLogger(cfg.LOG_LEVEL)
const ingest = await runIngest(cfg, log, { backfill: process.argv.includes('--backfill') })
process.once('SIGTERM', () => {
  ingest.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  )
})

/**
 * `ac-appview ingest` for the crash test, without the rest of the CLI: the same configuration
 * (environment), index migration and {@link runIngest}, and the same clean stop on SIGTERM. It
 * loads only the ingest's modules, so a restart takes a third of the CLI's start-up time, which
 * matters for a test that restarts it thirty times. Arguments: `--backfill`.
 */
import { loadConfig } from '../../src/config.js'
import { migrateIndex, openIndex } from '../../src/db/index.js'
import { runIngest } from '../../src/ingest/run.js'
import { createLogger } from '../../src/log.js'

const cfg = loadConfig()
const log = createLogger(cfg.LOG_LEVEL)
const db = openIndex(cfg.indexDbPath)
await migrateIndex(db)
const ingest = await runIngest(cfg, log, db, { backfill: process.argv.includes('--backfill') })
process.once('SIGTERM', () => {
  ingest
    .stop()
    .then(() => db.destroy())
    .then(
      () => process.exit(0),
      () => process.exit(1),
    )
})

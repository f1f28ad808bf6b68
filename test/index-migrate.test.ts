import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'
import { pendingMigrations } from '../src/db/index.js'
import { createLogger } from '../src/log.js'
import { openMigratedIndex } from '../src/services.js'

describe('index migrations', () => {
  it('let processes started together on one new index all open it (start --only ingest and --only appview)', async () => {
    const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-appview-migrate-'))
    try {
      for (let round = 0; round < 5; round++) {
        const cfg = loadConfig({ INDEX_DB_PATH: path.join(work, `index-${round}.sqlite`), DATA_DIR: work })
        const dbs = await Promise.all([openMigratedIndex(cfg, createLogger('silent')), openMigratedIndex(cfg, createLogger('silent'))])
        for (const db of dbs) expect(await pendingMigrations(db)).toEqual([])
        await Promise.all(dbs.map((db) => db.destroy()))
      }
    } finally {
      await fs.rm(work, { recursive: true, force: true })
    }
  })
})

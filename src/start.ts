import type { Config } from './config.js'
import type { IndexDb } from './db/index.js'
import type { Logger } from './log.js'
import { openMigratedIndex, runAppView, runIngest, runLive } from './services.js'
import { Supervisor, type Part } from './supervisor.js'
import { PARTS, type PartName } from './usage.js'


export interface Started {
  supervisor: Supervisor
  /** Stops every part (writer, ingest, then the AppView, which drains its requests) and closes the index. */
  stop(): Promise<void>
}

/**
 * `ac-appview start`: the parts AC deploys (writer live, ingest, AppView, or the subset `only`),
 * with one configuration, under one {@link Supervisor}: a part that fails is reported (log,
 * `/xrpc/_health`, the dashboard, `ac_part_up`) and restarted with backoff while the others go on.
 * The ingest and the AppView share the index (migrated first). Resolves once every part has
 * started or failed its first attempt.
 */
export async function runStart(cfg: Config, log: Logger, only: readonly PartName[] = PARTS): Promise<Started> {
  const wanted = new Set(only)
  const index: IndexDb | undefined = wanted.has('ingest') || wanted.has('appview') ? await openMigratedIndex(cfg, log) : undefined
  let supervisor: Supervisor | undefined
  const parts: Record<PartName, Part> = {
    writer: {
      name: 'writer',
      async start() {
        const live = await runLive(cfg, log)
        return { stop: () => live.stop(), failure: live.failure }
      },
    },
    ingest: {
      name: 'ingest',
      async start() {
        const ingest = await runIngest(cfg, log, index!)
        return { stop: () => ingest.stop() }
      },
    },
    appview: {
      name: 'appview',
      async start() {
        const { app, url } = await runAppView(cfg, log, index!, { parts: () => supervisor!.status() })
        log.info({ url }, 'AppView listening')
        return { stop: () => app.close() }
      },
    },
  }
  supervisor = new Supervisor(
    PARTS.filter((p) => wanted.has(p)).map((p) => parts[p]),
    log,
  )
  await supervisor.start()
  return {
    supervisor,
    async stop() {
      await supervisor.stop()
      await index?.destroy()
    },
  }
}

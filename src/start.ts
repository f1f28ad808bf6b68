import type { Config } from './config.js'
import type { Logger } from './log.js'
import { openMigratedIndex, runAppView, runIngest, runLive } from './services.js'
import { Supervisor, type Part } from './supervisor.js'
import { PARTS, type PartName } from './usage.js'
import { readWriterStatus, type WriterStatus } from './writer/status.js'

export interface Started {
  supervisor: Supervisor
  /** Stops every part (writer, ingest, then the AppView, which drains its requests). */
  stop(): Promise<void>
  /**
   * The writer's latest run, from the live writer's ledger (or the ledger in DATA_DIR while the
   * writer part is down); undefined when this process runs no writer. Served on METRICS_PORT's
   * `/status` by `start --only writer…`.
   */
  writerStatus?: () => Promise<WriterStatus | null>
}

/**
 * `ac-appview start`: the parts AC deploys (writer live, ingest, AppView, or the subset `only`),
 * with one configuration, under one {@link Supervisor}: a part that fails is reported (log,
 * `/xrpc/_health`, the dashboard, `ac_part_up`) and restarted with backoff while the others go on.
 * The index is migrated first; the ingest and the AppView open their own connections to it (on
 * PostgreSQL the ingest stands by while another process leads). The dashboard shows this
 * process's writer, or without one the writer at WRITER_STATUS_URL. Resolves once every part
 * has started or failed its first attempt.
 */
export async function runStart(cfg: Config, log: Logger, only: readonly PartName[] = PARTS): Promise<Started> {
  const wanted = new Set(only)
  if (wanted.has('ingest') || wanted.has('appview')) await (await openMigratedIndex(cfg, log)).destroy()
  let live: Awaited<ReturnType<typeof runLive>> | undefined
  const writerStatus = wanted.has('writer') ? async () => live?.writerStatus() ?? readWriterStatus(cfg.DATA_DIR) : undefined
  const parts: Record<PartName, Part> = {
    writer: {
      name: 'writer',
      async start() {
        const started = (live = await runLive(cfg, log))
        return {
          async stop() {
            if (live === started) live = undefined
            await started.stop()
          },
          failure: started.failure,
        }
      },
    },
    ingest: {
      name: 'ingest',
      async start() {
        const ingest = await runIngest(cfg, log)
        return { stop: () => ingest.stop() }
      },
    },
    appview: {
      name: 'appview',
      async start() {
        const { app, url } = await runAppView(cfg, log, { parts: () => supervisor.status(), writerStatus })
        log.info({ url }, 'AppView listening')
        return { stop: () => app.close() }
      },
    },
  }
  const supervisor = new Supervisor(
    PARTS.filter((p) => wanted.has(p)).map((p) => parts[p]),
    log,
  )
  await supervisor.start()
  return { supervisor, stop: () => supervisor.stop(), writerStatus }
}

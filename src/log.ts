import { pino, type DestinationStream, type Logger } from 'pino'
import { scrub } from './redact.js'

export type { Logger }

/**
 * The process logger: JSON lines on stderr (stdout stays free for command output such as
 * `--json`), or on `destination`. Secrets never reach it: at any depth of a line and of a child
 * logger's bindings, fields named like secrets (password, token, jwt, authorization, cookie,
 * secret) are redacted and URLs lose their userinfo (src/redact.ts).
 */
export function createLogger(level = process.env.LOG_LEVEL ?? 'info', name = 'ac-appview', destination: DestinationStream = pino.destination(2)): Logger {
  return pino(
    {
      name,
      level,
      formatters: {
        bindings: (bindings) => scrub(bindings) as Record<string, unknown>,
        log: (obj) => scrub(obj) as Record<string, unknown>,
      },
    },
    destination,
  )
}

import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * The process logger: JSON lines on stderr (stdout stays free for command output such as
 * `--json`). Secrets never reach it: passwords, tokens and authorization headers are redacted.
 */
export function createLogger(level = process.env.LOG_LEVEL ?? 'info', name = 'ac-appview'): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: ['password', '*.password', 'accessJwt', 'refreshJwt', '*.accessJwt', '*.refreshJwt', 'req.headers.authorization', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  )
}

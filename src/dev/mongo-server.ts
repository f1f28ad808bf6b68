/**
 * A MongoDB for tests and `ac-appview dev`.
 *
 * `startMongo()` returns a {@link MongoHandle}:
 * - If `MONGODB_URI` is set, that server is used as is: `{ uri: MONGODB_URI, dbName, external: true }` and
 *   `stop()` does nothing. `dbName` is `opts.dbName`, else `MONGODB_DB`, else `"aesthetic"`.
 * - Otherwise it starts a private in-memory server: `support/mongo/target/mongo-server.jar`
 *   (mongo-java-server with its memory backend and our own change-stream support, see
 *   `support/mongo/src/main/java/computer/aesthetic/MongoServerMain.java`), built first by
 *   `support/mongo/build.sh` when missing or stale (needs Java 17+ and Maven; the first build downloads from
 *   Maven Central). The server binds 127.0.0.1 on a free port; the handle is
 *   `{ uri: "mongodb://127.0.0.1:<port>/?directConnection=true", dbName, external: false }`, `dbName` being
 *   `opts.dbName` or `"aesthetic"`. Data lives only as long as the process. Change streams
 *   (`collection.watch()`, `db.watch()`) work with that URI; no replicaSet parameter is needed.
 *   `stop()` sends SIGTERM, then SIGKILL after 5 s, and resolves once the process has exited; calling it again
 *   is harmless. The Java process also exits by itself when this Node process goes away (it watches its
 *   stdin), and it does not keep Node's event loop alive.
 *
 * Errors (rejections): the build failing (message includes the build's output), `java` missing, the server
 * exiting before it listens, or not printing `LISTENING <port>` within 60 s (message includes Java's stderr).
 * `opts.log` receives the build's and the server's stderr lines.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export interface MongoHandle {
  /** Connection string for the `mongodb` driver. */
  uri: string
  /** Database to use. */
  dbName: string
  /** True when the server came from `MONGODB_URI` (not started, not stopped by us). */
  external: boolean
  /** Stops a server we started (no-op for an external one). */
  stop(): Promise<void>
}

export interface StartMongoOptions {
  dbName?: string
  log?: (line: string) => void
  /** Answer change streams as a standalone mongod does (error 40573), for tests of `doctor`. */
  standalone?: boolean
}

const DEFAULT_DB = 'aesthetic'
const LISTEN_TIMEOUT_MS = 60_000
const STOP_GRACE_MS = 5_000
const STDERR_KEEP_LINES = 60

export async function startMongo(opts: StartMongoOptions = {}): Promise<MongoHandle> {
  const externalUri = process.env.MONGODB_URI
  if (externalUri) {
    return {
      uri: externalUri,
      dbName: opts.dbName ?? (process.env.MONGODB_DB || DEFAULT_DB),
      external: true,
      stop: async () => {},
    }
  }
  const jar = await buildJar(opts.log)
  const { port, stop } = await launch(jar, opts.log, opts.standalone)
  return {
    uri: `mongodb://127.0.0.1:${port}/?directConnection=true`,
    dbName: opts.dbName ?? DEFAULT_DB,
    external: false,
    stop,
  }
}

/** The repository root: the nearest ancestor of this module that holds support/mongo/build.sh. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(path.join(dir, 'support', 'mongo', 'build.sh'))) return dir
    const parent = path.dirname(dir)
    if (parent === dir) {
      throw new Error(`startMongo: cannot find support/mongo/build.sh above ${fileURLToPath(import.meta.url)}`)
    }
    dir = parent
  }
}

function javaCommand(): string {
  const home = process.env.JAVA_HOME
  if (home) {
    const candidate = path.join(home, 'bin', 'java')
    if (existsSync(candidate)) return candidate
  }
  return 'java'
}

/** Runs support/mongo/build.sh (quick when the jar is current) and returns the jar path it prints. */
function buildJar(log?: (line: string) => void): Promise<string> {
  const script = path.join(repoRoot(), 'support', 'mongo', 'build.sh')
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    const stderr: string[] = []
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    forEachLine(child.stderr, (line) => {
      stderr.push(line)
      log?.(line)
    })
    child.on('error', (err) => reject(new Error(`startMongo: cannot run ${script}: ${err.message}`)))
    child.on('close', (code, signal) => {
      const jar = stdout.trim().split('\n').pop() ?? ''
      if (code === 0 && jar && existsSync(jar)) return resolve(jar)
      reject(
        new Error(`startMongo: ${script} failed (${signal ?? `exit ${code}`})` + (stderr.length ? `:\n${stderr.slice(-STDERR_KEEP_LINES).join('\n')}` : '')),
      )
    })
  })
}

/** Starts the jar on a free port; resolves with the port once it prints `LISTENING <port>`. */
function launch(jar: string, log?: (line: string) => void, standalone = false): Promise<{ port: number; stop: () => Promise<void> }> {
  const java = javaCommand()
  const child = spawn(java, ['-XX:+UseSerialGC', ...(standalone ? ['-Dac.standalone=true'] : []), '-jar', jar, '0'], { stdio: ['pipe', 'pipe', 'pipe'] })
  const stderr: string[] = []
  forEachLine(child.stderr, (line) => {
    stderr.push(line)
    if (stderr.length > STDERR_KEEP_LINES) stderr.shift()
    log?.(line)
  })
  // Keep stdin open and never write to it: the server exits when it closes, i.e. when this process dies.
  child.stdin.on('error', () => {})

  let exited = child.exitCode !== null || child.signalCode !== null
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true
      resolve()
    })
    child.once('error', () => {
      if (child.pid === undefined) {
        exited = true
        resolve()
      }
    })
  })
  const killOnExit = () => {
    if (!exited) child.kill('SIGTERM')
  }
  process.once('exit', killOnExit)

  let stopping: Promise<void> | undefined
  let listening = false
  child.once('exit', (code, signal) => {
    if (listening && !stopping) log?.(`mongo-server: exited unexpectedly (${signal ?? `exit ${code}`})`)
  })
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.removeListener('exit', killOnExit)
      if (!exited) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => {
          if (!exited) child.kill('SIGKILL')
        }, STOP_GRACE_MS)
        await exitPromise
        clearTimeout(timer)
      }
      child.stdin.destroy()
      child.stdout.destroy()
      child.stderr.destroy()
    })()
    return stopping
  }

  const stderrTail = () => (stderr.length ? `\nJava stderr:\n${stderr.join('\n')}` : ' (Java printed nothing on stderr)')

  return new Promise((resolve, reject) => {
    let settled = false
    const fail = (message: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      void stop().finally(() => reject(new Error(`startMongo: ${message}${stderrTail()}`)))
    }
    const timer = setTimeout(() => fail(`${jar} did not print "LISTENING <port>" within ${LISTEN_TIMEOUT_MS / 1000} s`), LISTEN_TIMEOUT_MS)
    child.once('error', (err: NodeJS.ErrnoException) => {
      const hint = err.code === 'ENOENT' ? ` (${java} not found; install Java 17+ or set JAVA_HOME)` : ''
      fail(`cannot start ${java}: ${err.message}${hint}`)
    })
    child.once('exit', (code, signal) => {
      // Let stderr drain so the message includes Java's last words.
      setTimeout(() => fail(`${jar} exited (${signal ?? `exit ${code}`}) before listening`), 50)
    })
    forEachLine(child.stdout, (line) => {
      const match = /^LISTENING (\d+)$/.exec(line.trim())
      if (!match || settled) {
        if (line.trim()) log?.(line)
        return
      }
      settled = true
      listening = true
      clearTimeout(timer)
      // Do not keep the event loop alive for the server; stdin closing on exit stops it.
      child.unref()
      for (const stream of [child.stdin, child.stdout, child.stderr]) {
        ;(stream as unknown as { unref?: () => void }).unref?.()
      }
      resolve({ port: Number(match[1]), stop })
    })
  })
}

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = ''
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    buffered += chunk
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      onLine(buffered.slice(0, newline).replace(/\r$/, ''))
      buffered = buffered.slice(newline + 1)
    }
  })
  stream.on('end', () => {
    if (buffered) onLine(buffered)
    buffered = ''
  })
}

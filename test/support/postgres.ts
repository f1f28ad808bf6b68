import { execFile, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import getPort from 'get-port'

/** A running throwaway PostgreSQL server. */
export interface Postgres {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres` (trust authentication, loopback only). */
  url: string
  port: number
  /** The temporary folder holding the cluster (and the server's socket). */
  dir: string
  /** Stops the server (fast shutdown; killed after 10 s) and deletes its cluster. Idempotent. */
  stop(): Promise<void>
}

const run = promisify(execFile)

/**
 * Starts a PostgreSQL server for tests from Debian's `postgresql` package (binaries in
 * `/usr/lib/postgresql/<version>/bin`, the newest version found; `PG_BIN` overrides): a fresh
 * cluster in a temporary folder, listening on a free loopback port only, with `fsync`,
 * `synchronous_commit` and `full_page_writes` off (tests need no durability).
 *
 * Debian's server refuses to run as root: as root, `initdb` runs as `nobody` (`runuser`) and the
 * server is started as `nobody` by `setpriv`, which also gives it a parent-death signal (SIGQUIT,
 * PostgreSQL's immediate shutdown), so it cannot outlive this process even when the test runner
 * is killed. A normal exit stops it too, and {@link Postgres.stop} in `afterAll` stops it first.
 * @throws Error naming what is missing (the package) or what failed (with PostgreSQL's log).
 */
export async function startPostgres(): Promise<Postgres> {
  const bin = await postgresBinDir()
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-pg-'))
  const data = path.join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  const owner = asRoot ? await nobody() : undefined
  if (owner) await fs.chown(dir, owner.uid, owner.gid)
  const initdb = [path.join(bin, 'initdb'), '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']
  try {
    await run(asRoot ? 'runuser' : initdb[0], asRoot ? ['-u', 'nobody', '--', ...initdb] : initdb.slice(1))
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true })
    throw new Error(`initdb failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err })
  }
  return launch(bin, dir, data, owner)
}

/**
 * A hot standby of `primary` (streaming replication, as a read replica in production): a base
 * backup of it (`pg_basebackup -R`: it follows the primary from then on) served like
 * {@link startPostgres} on a port of its own; read-only. Stopped by its own `stop`, before or
 * after the primary.
 */
export async function startReplica(primary: Postgres): Promise<Postgres> {
  const bin = await postgresBinDir()
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ac-pg-replica-'))
  const data = path.join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  const owner = asRoot ? await nobody() : undefined
  if (owner) await fs.chown(dir, owner.uid, owner.gid)
  const backup = [path.join(bin, 'pg_basebackup'), '-D', data, '-R', '-X', 'stream', '-c', 'fast', '-d', primary.url]
  try {
    await run(asRoot ? 'runuser' : backup[0], asRoot ? ['-u', 'nobody', '--', ...backup] : backup.slice(1))
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true })
    throw new Error(`pg_basebackup failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err })
  }
  return launch(bin, dir, data, owner)
}

/** Serves the cluster in `data` on a free loopback port, as `owner` when given, dying with this process. */
async function launch(bin: string, dir: string, data: string, owner: { uid: number; gid: number } | undefined): Promise<Postgres> {
  const port = await getPort({ host: '127.0.0.1' })
  const server = [path.join(bin, 'postgres'), '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`]
  for (const setting of ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off']) server.push('-c', setting)
  const credentials = owner ? [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups'] : []
  const child = spawn('setpriv', [...credentials, '--pdeathsig', 'QUIT', '--', ...server], { stdio: ['ignore', 'ignore', 'pipe'] })
  const killOnExit = () => child.kill('SIGQUIT')
  process.once('exit', killOnExit)
  let log = ''
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()))
  let stopped: Promise<void> | undefined
  const stop = () =>
    (stopped ??= (async () => {
      process.removeListener('exit', killOnExit)
      await terminate(child)
      await fs.rm(dir, { recursive: true, force: true })
    })())
  try {
    await ready(child, () => log)
  } catch (err) {
    await stop()
    throw err
  }
  return { url: `postgresql://postgres@127.0.0.1:${port}/postgres`, port, dir, stop }
}

/**
 * `PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` holding a `postgres` binary.
 * @throws Error naming the package to install when there is none.
 */
export async function postgresBinDir(): Promise<string> {
  if (process.env.PG_BIN) return process.env.PG_BIN
  const root = '/usr/lib/postgresql'
  const versions = (await fs.readdir(root).catch(() => [] as string[])).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  for (const v of versions) {
    const bin = path.join(root, v, 'bin')
    if (
      await fs.access(path.join(bin, 'postgres')).then(
        () => true,
        () => false,
      )
    )
      return bin
  }
  throw new Error('PostgreSQL not found in /usr/lib/postgresql: install Debian\u2019s postgresql package (apt-get install postgresql) or set PG_BIN')
}

async function nobody(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'nobody']), run('id', ['-g', 'nobody'])])
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/** Resolves once the server logs that it accepts connections; rejects if it exits or takes 30 s. */
function ready(child: ChildProcess, log: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`PostgreSQL did not start within 30 s:\n${log()}`)), 30_000)
    const onData = () => {
      if (!/ready to accept (read-only )?connections/.test(log())) return
      clearTimeout(timer)
      child.stderr!.off('data', onData)
      child.off('exit', onExit)
      resolve()
    }
    const onExit = (code: number | null) => fail(new Error(`PostgreSQL exited (code ${code}) while starting:\n${log()}`))
    const fail = (err: Error) => {
      clearTimeout(timer)
      child.stderr!.off('data', onData)
      child.off('exit', onExit)
      reject(err)
    }
    child.stderr!.on('data', onData)
    child.once('exit', onExit)
    onData()
  })
}

/** SIGINT (fast shutdown), then SIGKILL after 10 s; resolves when the process has exited. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGINT')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

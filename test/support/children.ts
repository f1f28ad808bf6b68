import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import path from 'node:path'

const ROOT = path.resolve(import.meta.dirname, '../..')
const BIN = path.join(ROOT, 'bin/ac-appview.js')
const running = new Set<ChildProcess>()
/** util-linux's `setpriv --pdeathsig`: the child is killed by the kernel if the test process dies first. */
const SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0

/**
 * Spawns a command for a test so it cannot outlive it: the kernel kills it (SIGKILL) when the
 * test process dies, and {@link killChildren} (run after every test file by test/support/setup.ts)
 * kills any still running when the file ends, whether it passed, failed or timed out.
 */
export function spawnTracked(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = SETPRIV ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], opts) : spawn(command, args, opts)
  running.add(child)
  child.once('exit', () => running.delete(child))
  return child
}

/** `ac-appview <args>` as its own process (see {@link spawnTracked}). */
export function spawnCli(args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawnTracked(process.execPath, [BIN, ...args], opts)
}

/** A long-running Node child of a test: its process, its stderr so far, and its exit code. */
export interface Child {
  child: ChildProcess
  stderr(): string
  exited: Promise<number | null>
}

/**
 * Runs `node <args>` from the repository's root with `env` on top of the test's environment
 * (LOG_LEVEL info unless `env` says otherwise), keeping its stderr; tracked as {@link spawnTracked}.
 */
export function spawnNode(args: string[], env: Record<string, string>): Child {
  let err = ''
  const child = spawnTracked(process.execPath, args, { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  return { child, stderr: () => err, exited }
}

/** `ac-appview <args>` as a long-running {@link Child} (see {@link spawnNode}). */
export function startCli(args: string[], env: Record<string, string>): Child {
  return spawnNode([BIN, ...args], env)
}

/** Kills every tracked child still running. */
export async function killChildren(): Promise<void> {
  const exits = [...running].map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : c.once('exit', resolve))))
  for (const c of running) c.kill('SIGKILL')
  await Promise.all(exits)
}

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import path from 'node:path'

const BIN = path.resolve(import.meta.dirname, '../../bin/ac-appview.js')
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

/** Kills every tracked child still running. */
export async function killChildren(): Promise<void> {
  const exits = [...running].map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : c.once('exit', resolve))))
  for (const c of running) c.kill('SIGKILL')
  await Promise.all(exits)
}

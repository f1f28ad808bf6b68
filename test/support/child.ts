import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'

const ROOT = path.resolve(import.meta.dirname, '../..')

/** A Node child process of a test: its process, its stderr so far, and its exit code. */
export interface Child {
  child: ChildProcess
  stderr(): string
  exited: Promise<number | null>
}

/**
 * Runs `node <args>` from the repository's root with `env` on top of the test's environment. It
 * cannot outlive the test process: `setpriv --pdeathsig` kills it when the test process dies,
 * even killed outright, and a normal exit kills it too.
 */
export function spawnNode(args: string[], env: Record<string, string>): Child {
  let err = ''
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      process.removeListener('exit', killOnExit)
      r(code)
    }),
  )
  return { child, stderr: () => err, exited }
}

/** `ac-appview <args>` (bin/ac-appview.js) as a child process; see {@link spawnNode}. */
export function spawnCli(args: string[], env: Record<string, string>): Child {
  return spawnNode([path.join(ROOT, 'bin/ac-appview.js'), ...args], env)
}

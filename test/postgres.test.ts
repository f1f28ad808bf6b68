import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../src/wait.js'
import { postgresBinDir, startPostgres, type Postgres } from './support/postgres.js'

const ROOT = path.resolve(import.meta.dirname, '..')
const run = promisify(execFile)

/** Pids of the PostgreSQL processes (postmaster and backends) serving `port`, from /proc. */
async function postgresOn(port: number): Promise<number[]> {
  const pids: number[] = []
  for (const pid of (await fs.readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes('postgres') && cmdline.split('\0').join(' ').includes(`-p ${port} `)) pids.push(Number(pid))
  }
  return pids
}

/** The test harness's PostgreSQL (test/support/postgres.ts): it serves, and it never outlives its test process. */
describe('PostgreSQL harness', () => {
  let pg: Postgres | undefined

  afterAll(async () => {
    await pg?.stop()
  })

  it('serves SQL on loopback and leaves no process or folder when stopped', async () => {
    pg = await startPostgres()
    const { stdout } = await run(path.join(await postgresBinDir(), 'psql'), [pg.url, '-tAc', 'show fsync'])
    expect(stdout.trim()).toBe('off')
    await pg.stop()
    expect(await postgresOn(pg.port)).toEqual([])
    expect(await fs.stat(pg.dir).catch(() => null)).toBeNull()
  })

  it('dies with its test process, even one killed outright', async () => {
    const script =
      "import { startPostgres } from './test/support/postgres.ts'; const pg = await startPostgres(); process.stdout.write(JSON.stringify(pg) + '\\n'); setInterval(() => {}, 1000)"
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    const { port, dir } = await new Promise<Postgres>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(JSON.parse(d.toString())))
      child.once('exit', (code) => reject(new Error(`the child exited with ${code}`)))
    })
    try {
      expect((await postgresOn(port)).length).toBeGreaterThan(0)
      child.kill('SIGKILL')
      await waitFor('PostgreSQL to follow its parent', async () => (await postgresOn(port)).length === 0, 15_000)
    } finally {
      child.kill('SIGKILL')
      await fs.rm(dir, { recursive: true, force: true }) // a killed process cleans up nothing
    }
  })
})

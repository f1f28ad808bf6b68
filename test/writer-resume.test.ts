import { ObjectId } from 'mongodb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runAudit } from '../src/services.js'
import { addUser, listRepo, pixelArt, putMedia, type AcUser } from './support/ac.js'
import { startCountingProxy } from './support/counting-proxy.js'
import { spawnCli } from './support/children.js'
import { startStack, writerEnv, type Stack } from './support/stack.js'

const MOODS = 800
const PAINTINGS = 150

/** A writer under a crash loop: killed every few seconds, it still finishes its largest repo, uploading no blob twice. */
describe('writer backfill under a crash loop', () => {
  let stack: Stack
  let big: AcUser
  let proxy: Awaited<ReturnType<typeof startCountingProxy>>

  const env = () => writerEnv(stack, { PDS_URL: proxy.url, LOG_LEVEL: 'info', WRITER_CONCURRENCY: '2' })

  /**
   * Runs the CLI; with `killAfterMs`, kills it with SIGKILL that long after it starts comparing
   * repos (its start-up, which varies with the machine's load, is not part of the loop's work).
   */
  const cli = (args: string[], killAfterMs?: number) =>
    new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawnCli(args, { env: env(), stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      let timer: NodeJS.Timeout | undefined
      child.stdout!.on('data', (d) => (stdout += d))
      child.stderr!.on('data', (d) => {
        stderr += d
        if (killAfterMs !== undefined && !timer && stderr.includes('repos to compare')) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
      })
      child.on('exit', (code, signal) => {
        clearTimeout(timer)
        resolve({ code, signal, stdout, stderr })
      })
    })

  beforeAll(async () => {
    stack = await startStack()
    proxy = await startCountingProxy(stack.net.pdsUrl)
    big = await addUser(stack, 'big')
    const when = (i: number) => new Date(Date.UTC(2024, 0, 1) + i * 60_000)
    await stack.mongo
      .collection('moods')
      .insertMany(Array.from({ length: MOODS }, (_, i) => ({ _id: new ObjectId(), mood: `mood ${i}`, when: when(i), user: big.sub })))
    const paintings = []
    for (let i = 0; i < PAINTINGS; i++) {
      const slug = `2024.1.1.0.0.0.${i}`
      await putMedia(stack, 'user-aesthetic-computer', `${big.sub}/painting/${slug}.png`, await pixelArt(48 + (i % 5) * 40, i))
      paintings.push({ _id: new ObjectId(), code: `cl${i}`, slug, when: when(i), bucket: 'user-aesthetic-computer', user: big.sub })
    }
    await stack.mongo.collection('paintings').insertMany(paintings)
  })

  afterAll(async () => {
    await proxy?.close()
    await stack?.close()
  })

  it('progresses through the largest repo under SIGKILLs every 1.5-3 s of work, shows killed runs as interrupted, and uploads no blob twice', async () => {
    const records = async () =>
      (await listRepo(stack, big.did, 'computer.aesthetic.mood')).size + (await listRepo(stack, big.did, 'computer.aesthetic.painting')).size
    let kills = 0
    let finished
    let before = 0
    for (let round = 0; round < 30 && !finished; round++) {
      const run = await cli(['writer', 'backfill'], 1500 + Math.floor(Math.random() * 1500))
      if (run.signal !== 'SIGKILL') {
        expect(run.code, run.stderr).toBe(0)
        finished = run
        break
      }
      const status = JSON.parse((await cli(['writer', 'status', '--json'])).stdout)
      if (status.runs[0]?.status === 'finished') {
        finished = run // the kill came after the run had finished its work, while the process was exiting (a loaded machine)
        break
      }
      kills++
      expect(status.runs[0]).toMatchObject({ mode: 'backfill', status: 'interrupted' })
      const now = await records()
      expect(now, `round ${round}: records disappeared`).toBeGreaterThanOrEqual(before)
      before = now
    }
    // More than one loop's work: the repo needed several killed runs to get through.
    expect(kills).toBeGreaterThanOrEqual(3)
    expect(finished, 'the crash loop never finished the repo').toBeDefined()
    expect(await records()).toBe(MOODS + PAINTINGS)
    expect([...proxy.uploads.values()].filter((n) => n > 1)).toEqual([])
    expect(proxy.uploads.size).toBe(PAINTINGS)
    const audit = await runAudit(stack.cfg, stack.log, {})
    expect(audit.findings).toEqual([])

    const again = await cli(['writer', 'backfill', '--json'])
    const report = JSON.parse(again.stdout)
    expect(report.changes).toEqual([])
    expect(report.resumed).toBeUndefined() // the last run finished: nothing to resume
  }, 600_000)
})

/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or a benchmark's `BENCH_CPU_PROF`): the share
 * of sampled time by area (an npm package, this project's source folder, Node's internals, GC,
 * idle) and the functions with the most self time.
 *   npx tsx bench/support/profile-summary.ts FILE.cpuprofile [TOP=25]
 */
import fs from 'node:fs/promises'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: Node[]
  samples: number[]
  timeDeltas: number[]
}

/** Where a frame's code lives: `pkg:<name>`, `ac:<folder>`, `node`, or V8's own `(gc)`, `(idle)`, `(program)`. */
export function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return `pkg:${pkg[1]}`
  if (url.startsWith('node:')) return 'node'
  const own = /\/(src|bench|test)\/([^/]+)/.exec(url)
  return own ? `ac:${own[1]}/${own[2].replace(/\.[jt]s$/, '')}` : url
}

async function main() {
  const [file, topArg] = process.argv.slice(2)
  if (!file) throw new Error('usage: profile-summary.ts FILE.cpuprofile [TOP]')
  const profile = JSON.parse(await fs.readFile(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const areas = new Map<string, number>()
  const fns = new Map<string, number>()
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const area = areaOf(url, functionName)
    areas.set(area, (areas.get(area) ?? 0) + us)
    const key = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(src|bench)\//, '$1/')}:${lineNumber + 1}` : ''}`
    fns.set(key, (fns.get(key) ?? 0) + us)
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1)} %`
  console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled on the main thread`)
  console.table(
    [...areas]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 20)
      .map(([area, us]) => ({ area, seconds: +(us / 1e6).toFixed(2), share: pct(us) })),
  )
  console.table(
    [...fns]
      .sort((a, b) => b[1] - a[1])
      .slice(0, Number(topArg ?? 25))
      .map(([fn, us]) => ({ 'self time': pct(us), fn })),
  )
}

await main()

import fs from 'node:fs'
import path from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(import.meta.dirname, '..')

/** One import of a file: the module (a repository path, or a package name) and whether only types come from it. */
interface Import {
  module: string
  typeOnly: boolean
}

/**
 * The dependency rules of docs/architecture.md: files matching `from` may not import modules
 * matching `forbidden`, except type-only imports of modules matching `types`.
 */
const RULES: Array<{ from: RegExp; forbidden: RegExp; types?: RegExp; why: string }> = [
  {
    from: /^src\/collections\//,
    forbidden: /^src\/(writer|ingest|appview|feeds|dev|start|supervisor|doctor)\b/,
    why: 'a kind module imports no pipeline: what it needs comes in through its context',
  },
  {
    from: /^src\/collections\//,
    forbidden: /^(mongodb|sharp|yauzl|pg|node:child_process|better-sqlite3|kysely|fastify)$/,
    why: 'a kind module loads no driver, image library or process spawning',
  },
  {
    from: /^src\/appview\//,
    forbidden: /^src\/(writer|ingest)\//,
    types: /^src\/writer\/status\.ts$/,
    why: "the AppView reads only the index; the writer's status reaches it as data",
  },
  { from: /^src\/ingest\//, forbidden: /^src\/(writer|appview)\//, why: 'the ingest does not reach into the writer or the AppView' },
  { from: /^src\/writer\//, forbidden: /^src\/(ingest|appview)\//, why: 'the writer does not reach into the ingest or the AppView' },
]

/** Every import of every TypeScript file under `dirs`, by file (repository paths). */
function importGraph(dirs: string[]): Map<string, Import[]> {
  const graph = new Map<string, Import[]>()
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const file = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(file)
      else if (file.endsWith('.ts')) graph.set(file, importsOf(file, fs.readFileSync(path.join(ROOT, file), 'utf8')))
    }
  }
  dirs.forEach(walk)
  return graph
}

/** The modules a file imports (static, dynamic and re-exports), relative ones resolved from its folder. */
function importsOf(file: string, source: string): Import[] {
  const typeOnly = new Set<string>()
  for (const node of ts.createSourceFile(file, source, ts.ScriptTarget.Latest).statements) {
    if (ts.isImportDeclaration(node) && node.importClause?.isTypeOnly) typeOnly.add((node.moduleSpecifier as ts.StringLiteral).text)
  }
  const resolve = (n: string) => (n.startsWith('.') ? path.normalize(path.join(path.dirname(file), n)).replace(/\.js$/, '.ts') : n)
  return ts.preProcessFile(source, true, true).importedFiles.map(({ fileName }) => ({ module: resolve(fileName), typeOnly: typeOnly.has(fileName) }))
}

/** Each import that breaks a rule, as `file → module: why`. */
function violations(graph: Map<string, Import[]>): string[] {
  const out: string[] = []
  for (const [file, imports] of graph) {
    for (const rule of RULES.filter((r) => r.from.test(file))) {
      for (const { module, typeOnly } of imports) {
        if (rule.forbidden.test(module) && !(typeOnly && rule.types?.test(module))) out.push(`${file} → ${module}: ${rule.why}`)
      }
    }
  }
  return out
}

describe('architecture', () => {
  it('keeps kinds pure and the parts apart', () => {
    const graph = importGraph(['src'])
    expect(graph.size).toBeGreaterThan(50)
    expect(violations(graph)).toEqual([])
  })

  it('would catch each coupling the house once had', () => {
    // The couplings a newcomer's read found (issue "All of AC's kinds, in a house a newcomer can change").
    const before = new Map<string, Import[]>(
      Object.entries({
        'src/collections/tape.ts': "import { convertTape } from '../writer/tape-video.js'",
        'src/collections/types.ts': "import { ObjectId } from 'mongodb'",
        'src/appview/operator.ts': "import { readWriterStatus } from '../writer/status.js'",
        'src/appview/health.ts': "import { Backfiller } from '../ingest/backfill.js'",
        'src/appview/metrics.ts': "import { ingestMetrics } from '../ingest/metrics.js'",
        'src/writer/bsky-account.ts': "import { configuredIdentity } from '../ingest/identity.js'",
        'src/appview/server.ts': "import type { WriterStatus } from '../writer/status.js'",
      }).map(([file, source]) => [file, importsOf(file, source)]),
    )
    expect(violations(before).map((v) => v.split(':')[0])).toEqual([
      'src/collections/tape.ts → src/writer/tape-video.ts',
      'src/collections/types.ts → mongodb',
      'src/appview/operator.ts → src/writer/status.ts',
      'src/appview/health.ts → src/ingest/backfill.ts',
      'src/appview/metrics.ts → src/ingest/metrics.ts',
      'src/writer/bsky-account.ts → src/ingest/identity.ts',
    ])
  })
})

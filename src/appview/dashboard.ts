import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, onRequestHookHandler } from 'fastify'
import type { OperatorStatus } from './operator.js'

/** The dashboard's static files: plain HTML, CSS and JS, no build step, no external requests. */
const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
}

/**
 * Content-Security-Policy of the dashboard: its own scripts, styles and XRPC calls only;
 * images from anywhere (thumbnails live on the authors' PDSes or the blob CDN).
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src * data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/**
 * The operator dashboard: `GET /` (page), `GET /dashboard/app.js` and `/dashboard/style.css`, and
 * `GET /dashboard/api/status` ({@link OperatorStatus}: counts, quarantine, conflicts, writer), all
 * behind the operator credential (`guard`: the writer's problems are not public).
 * The page itself reads `/xrpc/_health` for ingest status and lag, `getFeed` for the gallery and
 * `resolveCode` for the lookup box, so it shows exactly what the public API serves.
 */
export function installDashboard(app: FastifyInstance, status: () => Promise<OperatorStatus>, guard: onRequestHookHandler): void {
  const dir = assetDir()
  const files = Object.fromEntries(Object.keys(ASSETS).map((name) => [name, fs.readFileSync(new URL(name, dir), 'utf8')]))
  const serve = (name: string) => (_req: unknown, reply: import('fastify').FastifyReply) =>
    reply
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .type(ASSETS[name])
      .send(files[name])
  app.get('/', { onRequest: guard }, serve('index.html'))
  app.get('/dashboard/app.js', { onRequest: guard }, serve('app.js'))
  app.get('/dashboard/style.css', { onRequest: guard }, serve('style.css'))
  app.get('/dashboard/api/status', { onRequest: guard }, async (_req, reply) => reply.header('cache-control', 'no-store').send(await status()))
}

/**
 * src/appview/dashboard/: next to this module when run from source; from a `npm run build`
 * (dist/src/appview/) the source tree's copy, since tsc copies no assets.
 */
function assetDir(): URL {
  const local = new URL('./dashboard/', import.meta.url)
  if (fs.existsSync(fileURLToPath(new URL('index.html', local)))) return local
  return new URL('../../../src/appview/dashboard/', import.meta.url)
}

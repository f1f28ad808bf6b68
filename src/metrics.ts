import http from 'node:http'
import { Registry, collectDefaultMetrics } from 'prom-client'

/**
 * The Prometheus registries of the parts loaded in this process (the ingest's `ingest_*`, the
 * writer's `writer_*`, the supervisor's `ac_part_*`): each part's metrics module registers its
 * registry here when it is loaded, so the AppView's `/metrics` (or {@link serveMetrics} in a
 * process without the AppView) serves whatever runs in the process without knowing the parts.
 */
const parts = new Set<Registry>()

/** Node's process metrics (CPU, memory, event loop), once per process. */
const processMetrics = new Registry()
collectDefaultMetrics({ register: processMetrics })

/** Adds a part's registry to those served. */
export function registerPartMetrics(registry: Registry): void {
  parts.add(registry)
}

/** Node's process metrics, every part's and `own` (the AppView's), merged into one registry. */
export function processRegistry(own?: Registry): Registry {
  return Registry.merge([processMetrics, ...parts, ...(own ? [own] : [])])
}

/**
 * Serves {@link processRegistry} at `GET /metrics` on `host:port` (METRICS_PORT), for a process
 * without the AppView (`ingest`, `writer live`, `start --only writer,ingest`), and with `status`
 * (a process running the writer) `GET /status`: its JSON (the writer's latest run, which `serve`
 * shows on the dashboard through WRITER_STATUS_URL). `authorize` decides on the request's
 * `Authorization` header (ADMIN_PASSWORD) for both. Any other path answers 404.
 */
export async function serveMetrics(
  host: string,
  port: number,
  authorize: (authorization: string | undefined) => boolean,
  status?: () => unknown,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const route = req.method === 'GET' ? req.url?.split('?')[0] : undefined
    if (route !== '/metrics' && !(route === '/status' && status)) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    if (!authorize(req.headers.authorization))
      return void res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="ac-appview operator"' }).end('ADMIN_PASSWORD required\n')
    const answer: Promise<[string, string]> =
      route === '/status'
        ? Promise.resolve()
            .then(() => status!())
            .then((value) => ['application/json', JSON.stringify(value ?? null)])
        : Promise.resolve(processRegistry()).then(async (registry) => [registry.contentType, await registry.metrics()])
    answer.then(
      ([type, body]) => res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
    )
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()))
  return server
}

import http from 'node:http'
import type { Socket } from 'node:net'
import { compile } from '@fastify/proxy-addr'
import type { FastifyServerFactory } from 'fastify'
import { clientKey } from './http.js'

/** What one client, and all of them together, may hold of the server (issue 15, attack 8). */
export interface ConnectionLimits {
  /** Open connections in all; past it Node closes new ones at once (`server.maxConnections`). */
  maxConnections: number
  /** Open connections per client (an IPv4 address or an IPv6 /64); past it new ones are closed at once. */
  maxConnectionsPerClient: number
  /** Time a client has to send its request headers, in ms; then 408 and the connection is closed. */
  headersTimeoutMs: number
}

/**
 * Fastify's `serverFactory`: Node's HTTP server with `limits`, and Fastify's `requestTimeout` and
 * `keepAliveTimeout` as Fastify would set them. Half-sent requests and drip-fed headers cannot
 * hold sockets (Node checks the timeouts every second, not every 30 s), and no client can hold
 * more than its share of connections. Connections from the reverse proxies in `trustProxy`
 * (TRUST_PROXY) carry many clients and are only counted in the total: the proxy limits its
 * clients itself (see the README's proxy settings).
 */
export function limitedServer(limits: ConnectionLimits, trustProxy: string[] = []): FastifyServerFactory {
  const isProxy = compile(trustProxy)
  return (handler, fastifyOptions) => {
    const options = fastifyOptions as { requestTimeout: number; keepAliveTimeout: number }
    const server = http.createServer(
      {
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: Math.max(options.requestTimeout, limits.headersTimeoutMs), // Node requires requestTimeout ≥ headersTimeout
        keepAliveTimeout: options.keepAliveTimeout,
        connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
      },
      handler,
    )
    server.maxConnections = limits.maxConnections
    // A client that sends its request and then closes its side (HTTP/1.0 tools, `nc`) still gets
    // the answer: Node's own property (its default, false, drops requests whose answer is not
    // written before the client's FIN is read, and answers that wait on PostgreSQL always are).
    Object.assign(server, { httpAllowHalfOpen: true })
    const open = new Map<string, number>()
    server.on('connection', (socket: Socket) => {
      const address = socket.remoteAddress
      if (!address || isProxy(address, 0)) return
      const key = clientKey(address)
      const count = open.get(key) ?? 0
      if (count >= limits.maxConnectionsPerClient) {
        socket.destroy()
        return
      }
      open.set(key, count + 1)
      socket.once('close', () => {
        const left = (open.get(key) ?? 1) - 1
        if (left > 0) open.set(key, left)
        else open.delete(key)
      })
    })
    return server
  }
}

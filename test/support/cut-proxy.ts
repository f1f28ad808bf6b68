import net from 'node:net'

/**
 * A TCP proxy on loopback that can cut the network between a client and a server: `cut()`
 * drops every connection and refuses new ones until `restore()`. It stands in for a network
 * cut or a lost MongoDB primary; the server behind it keeps running (and keeps its data).
 */
export async function startCutProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>()
  let down = false
  const server = net.createServer((client) => {
    if (down) return client.destroy()
    const upstream = net.connect(target)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as net.AddressInfo
  return {
    port,
    cut() {
      down = true
      for (const s of sockets) s.destroy()
    },
    restore() {
      down = false
    },
    close: () => new Promise<void>((r) => server.close(() => r())).finally(() => sockets.forEach((s) => s.destroy())),
  }
}

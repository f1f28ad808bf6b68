import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { TID } from '@atproto/common-web'
import { Secp256k1Keypair } from '@atproto/crypto'
import { BlockMap, MemoryBlockstore, Repo, WriteOpAction, blocksToCarFile, cidForRecord } from '@atproto/repo'
import { MessageFrame, XrpcStreamServer, type Handler } from '@atproto/xrpc-server'
import { Client as PlcClient } from '@did-plc/lib'

/** A repo of our own: a did:plc on the test PLC whose DID document names any PDS we like. */
export interface RogueRepo {
  did: string
  /** Signs a commit creating `record` in `collection`; resolves to its `#commit` body (seq and time set when sent). */
  create(collection: string, record: Record<string, unknown>): Promise<Record<string, unknown>>
  /** Signs a commit deleting `collection/rkey`; resolves to its `#commit` body. */
  remove(collection: string, rkey: string): Promise<Record<string, unknown>>
  /**
   * A commit creating `record` as {@link create} would, but signed by another key than the DID
   * document's (a forgery: the repo itself does not move); resolves to its `#commit` body.
   */
  forge(collection: string, record: Record<string, unknown>): Promise<Record<string, unknown>>
}

/**
 * Creates a did:plc on `plcUrl` (its own key as signing and rotation key) whose document names
 * `pdsUrl` as its PDS: anyone can publish such a document, naming a PDS that never heard of it.
 */
export async function rogueRepo(plcUrl: string, pdsUrl: string, handle: string): Promise<RogueRepo> {
  const key = await Secp256k1Keypair.create({ exportable: true })
  const did = await new PlcClient(plcUrl).createDid({ signingKey: key.did(), handle, pds: pdsUrl, rotationKeys: [key.did()], signer: key })
  return repoOf(did, key)
}

/** A fresh in-memory repo of `did` whose commits `key` signs (on no PLC: the caller knows the key). */
export async function repoOf(did: string, key: Secp256k1Keypair): Promise<RogueRepo> {
  let repo = await Repo.create(new MemoryBlockstore(), did, key)
  /**
   * The `#commit` body of a commit creating or deleting `collection/rkey`, signed by `signer`;
   * applied to the repo unless forged. A forgery never touches the blockstore: applying it would
   * drop MST nodes the real repo still points at.
   */
  const write = async (
    action: WriteOpAction.Create | WriteOpAction.Delete,
    collection: string,
    rkey: string,
    record: Record<string, unknown> | undefined,
    signer: Secp256k1Keypair,
  ) => {
    const since = repo.commit.rev
    const nsid = collection as `${string}.${string}.${string}`
    const commit = await repo.formatCommit(
      action === WriteOpAction.Create ? { action, collection: nsid, rkey, record: record as never } : { action, collection: nsid, rkey },
      signer,
    )
    if (signer === key) repo = await repo.applyCommit(commit)
    const cid = action === WriteOpAction.Create ? await cidForRecord(record as never) : null
    const blocks = new BlockMap()
    blocks.addMap(commit.newBlocks)
    blocks.addMap(commit.relevantBlocks)
    return {
      rebase: false,
      tooBig: false,
      repo: did,
      commit: commit.cid,
      rev: commit.rev,
      since,
      blocks: await blocksToCarFile(commit.cid, blocks),
      ops: [{ action, path: `${collection}/${rkey}`, cid }],
      blobs: [],
    }
  }
  return {
    did,
    create: (collection, record) => write(WriteOpAction.Create, collection, TID.nextStr(), record, key),
    remove: (collection, rkey) => write(WriteOpAction.Delete, collection, rkey, undefined, key),
    forge: async (collection, record) => write(WriteOpAction.Create, collection, TID.nextStr(), record, await Secp256k1Keypair.create()),
  }
}

/** A repo listed by the rogue host's `com.atproto.sync.listRepos`. */
export interface ListedRepo {
  did: string
  head: string
  rev: string
  active: boolean
  status?: string
}

/**
 * A firehose host that lies: real HTTP and WebSocket on loopback, serving
 * `com.atproto.sync.subscribeRepos` frames it is told to send (each with the next seq; a
 * reconnecting client gets those after its cursor) and `com.atproto.sync.listRepos` from
 * `listed`. Nothing it sends is checked by anyone but the ingest.
 */
export interface RogueHost {
  /** ws URL, optionally with `userinfo` (`ws://user:pass@127.0.0.1:port`). */
  url: string
  /** Repos its listRepos returns (edit freely). */
  listed: ListedRepo[]
  /** Sends a message of `type` (`#commit`, `#account`, `#identity`, `#info`…) to every subscriber, now and later. */
  send(type: string, body: Record<string, unknown>): void
  close(): Promise<void>
}

export async function startRogueHost(opts: { userinfo?: string } = {}): Promise<RogueHost> {
  const events: Array<{ seq: number; type: string; body: Record<string, unknown> }> = []
  const waiters = new Set<() => void>()
  const listed: ListedRepo[] = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://rogue')
    if (url.pathname === '/xrpc/com.atproto.sync.listRepos') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ repos: listed }))
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'MethodNotImplemented', message: 'no' }))
    }
  })
  const handler: Handler = async function* (req, signal) {
    const cursor = Number(new URL(req.url ?? '/', 'http://rogue').searchParams.get('cursor') ?? Number.MAX_SAFE_INTEGER)
    let next = events.findIndex((e) => e.seq > cursor)
    if (next < 0) next = events.length
    while (!signal.aborted) {
      while (next < events.length) {
        const e = events[next++]
        yield new MessageFrame((e.type === '#info' ? e.body : { seq: e.seq, time: new Date().toISOString(), ...e.body }) as never, { type: e.type })
      }
      await new Promise<void>((resolve) => {
        const wake = () => (waiters.delete(wake), resolve())
        waiters.add(wake)
        signal.addEventListener('abort', wake, { once: true })
      })
    }
  }
  new XrpcStreamServer({ server, handler })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as AddressInfo).port
  return {
    url: `ws://${opts.userinfo ? `${opts.userinfo}@` : ''}127.0.0.1:${port}`,
    listed,
    send(type, body) {
      events.push({ seq: events.length + 1, type, body })
      for (const wake of [...waiters]) wake()
    },
    close: () =>
      new Promise<void>((r) => {
        for (const wake of [...waiters]) wake()
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

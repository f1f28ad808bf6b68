/**
 * GENERATED CODE - DO NOT MODIFY
 */
import {
  type Auth,
  type Options as XrpcOptions,
  Server as XrpcServer,
  type StreamConfigOrHandler,
  type MethodConfigOrHandler,
  createServer as createXrpcServer,
} from '@atproto/xrpc-server'
import { schemas } from './lexicons.js'
import * as ComputerAestheticActorGetProfile from './types/computer/aesthetic/actor/getProfile.js'
import * as ComputerAestheticMediaGetAuthorFeed from './types/computer/aesthetic/media/getAuthorFeed.js'
import * as ComputerAestheticMediaGetFeed from './types/computer/aesthetic/media/getFeed.js'
import * as ComputerAestheticMediaResolveCode from './types/computer/aesthetic/media/resolveCode.js'

export function createServer(options?: XrpcOptions): Server {
  return new Server(options)
}

export class Server {
  xrpc: XrpcServer
  computer: ComputerNS

  constructor(options?: XrpcOptions) {
    this.xrpc = createXrpcServer(schemas, options)
    this.computer = new ComputerNS(this)
  }
}

export class ComputerNS {
  _server: Server
  aesthetic: ComputerAestheticNS

  constructor(server: Server) {
    this._server = server
    this.aesthetic = new ComputerAestheticNS(server)
  }
}

export class ComputerAestheticNS {
  _server: Server
  actor: ComputerAestheticActorNS
  media: ComputerAestheticMediaNS

  constructor(server: Server) {
    this._server = server
    this.actor = new ComputerAestheticActorNS(server)
    this.media = new ComputerAestheticMediaNS(server)
  }
}

export class ComputerAestheticActorNS {
  _server: Server

  constructor(server: Server) {
    this._server = server
  }

  getProfile<A extends Auth = void>(
    cfg: MethodConfigOrHandler<
      A,
      ComputerAestheticActorGetProfile.QueryParams,
      ComputerAestheticActorGetProfile.HandlerInput,
      ComputerAestheticActorGetProfile.HandlerOutput
    >,
  ) {
    const nsid = 'computer.aesthetic.actor.getProfile' // @ts-ignore
    return this._server.xrpc.method(nsid, cfg)
  }
}

export class ComputerAestheticMediaNS {
  _server: Server

  constructor(server: Server) {
    this._server = server
  }

  getAuthorFeed<A extends Auth = void>(
    cfg: MethodConfigOrHandler<
      A,
      ComputerAestheticMediaGetAuthorFeed.QueryParams,
      ComputerAestheticMediaGetAuthorFeed.HandlerInput,
      ComputerAestheticMediaGetAuthorFeed.HandlerOutput
    >,
  ) {
    const nsid = 'computer.aesthetic.media.getAuthorFeed' // @ts-ignore
    return this._server.xrpc.method(nsid, cfg)
  }

  getFeed<A extends Auth = void>(
    cfg: MethodConfigOrHandler<
      A,
      ComputerAestheticMediaGetFeed.QueryParams,
      ComputerAestheticMediaGetFeed.HandlerInput,
      ComputerAestheticMediaGetFeed.HandlerOutput
    >,
  ) {
    const nsid = 'computer.aesthetic.media.getFeed' // @ts-ignore
    return this._server.xrpc.method(nsid, cfg)
  }

  resolveCode<A extends Auth = void>(
    cfg: MethodConfigOrHandler<
      A,
      ComputerAestheticMediaResolveCode.QueryParams,
      ComputerAestheticMediaResolveCode.HandlerInput,
      ComputerAestheticMediaResolveCode.HandlerOutput
    >,
  ) {
    const nsid = 'computer.aesthetic.media.resolveCode' // @ts-ignore
    return this._server.xrpc.method(nsid, cfg)
  }
}

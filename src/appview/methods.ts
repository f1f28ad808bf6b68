import type { Lexicons } from '@atproto/lexicon'
import { KINDS, PREFIXED_CODE, byCodePrefix, type Kind } from '../collections/index.js'
import { decodeCursor, encodeCursor } from './cursor.js'
import type { FeedRow, IndexReader } from './queries.js'
import type { ViewCache } from './views.js'
import { XrpcError, echo, invalidRequest } from './xrpc.js'

/** A query method: decoded, lexicon-valid params in, the JSON body out (as a string). */
export type Method = (params: Record<string, any>) => string

export interface MethodDef {
  handler: Method
  /** `Cache-Control: public, max-age=…` of a successful answer, in seconds. */
  maxAge: number
  /** The lexicons defining the method's parameters; default AC's own (src/lexicon). */
  lexicons?: Lexicons
  /** Checks the request's `Authorization` header before the handler runs; throws an XrpcError (401) to refuse it. */
  auth?(authorization: string | undefined): Promise<void>
}

/**
 * The public contract (design.md, lexicons/computer/aesthetic/{media,actor}/*.json), by NSID.
 * Handlers are synchronous (the index is read through prepared statements) and throw
 * {@link XrpcError} for the lexicon's named errors.
 */
export function createMethods(reader: IndexReader, views: ViewCache): Record<string, MethodDef> {
  /** `{ items, cursor? }`: the first `limit` rows; a cursor when a further row was read. */
  const page = (rows: FeedRow[], limit: number): string => {
    const items = rows.slice(0, limit).map((r) => views.json(r)).filter((j) => j !== undefined)
    const cursor = rows.length > limit ? `,"cursor":"${encodeCursor(rows[limit - 1])}"` : ''
    return `{"items":[${items.join(',')}]${cursor}}`
  }
  const actorOrThrow = (actor: string) => {
    const found = reader.findActor(actor)
    if (!found) throw new XrpcError(400, 'ActorNotFound', `No indexed actor is ${echo(actor)}`)
    return found
  }

  return {
    /** `{ item }` for `#code` painting, `$code` KidLisp, `!code` tape. Errors: InvalidCode, NotFound. */
    'computer.aesthetic.media.resolveCode': {
      maxAge: 60,
      handler({ code }) {
        const match = PREFIXED_CODE.exec(code)
        if (!match) throw new XrpcError(400, 'InvalidCode', `Code must be #, $ or ! followed by 1-10 letters or digits, got ${echo(code)}`)
        const row = reader.codeWinner(byCodePrefix.get(match[1])!.kind, match[2])
        const json = row && row.status === null ? views.json(row) : undefined
        if (!json) throw new XrpcError(400, 'NotFound', `No item has the code ${code}`)
        return `{"item":${json}}`
      },
    },
    /** All items, newest `when` first. Errors: InvalidRequest (kind), InvalidCursor. */
    'computer.aesthetic.media.getFeed': {
      maxAge: 10,
      handler({ kind, limit, cursor }) {
        return page(reader.feedPage({ kind: checkKind(kind), limit, after: decodeCursor(cursor) }), limit)
      },
    },
    /** One author's items, newest `when` first. Errors: ActorNotFound, InvalidCursor. */
    'computer.aesthetic.media.getAuthorFeed': {
      maxAge: 10,
      handler({ actor, kind, limit, cursor }) {
        const k = checkKind(kind)
        const after = decodeCursor(cursor)
        return page(reader.feedPage({ did: actorOrThrow(actor).did, kind: k, limit, after }), limit)
      },
    },
    /** `{ did, handle?, counts, latestMood? }`. Errors: ActorNotFound. */
    'computer.aesthetic.actor.getProfile': {
      maxAge: 30,
      handler({ actor }) {
        const { did, handle } = actorOrThrow(actor)
        const profile = JSON.stringify({ did, ...(handle ? { handle } : {}), counts: reader.countsByKind(did) })
        const [mood] = reader.feedPage({ did, kind: 'mood', limit: 1 })
        const latest = mood && views.json(mood)
        return latest ? `${profile.slice(0, -1)},"latestMood":${latest}}` : profile
      },
    },
  }
}

/** `kind` is open (`knownValues`) in the lexicon; the AppView serves only AC's five kinds. */
function checkKind(kind: string | undefined): Kind | undefined {
  if (kind === undefined || (KINDS as readonly string[]).includes(kind)) return kind as Kind | undefined
  throw invalidRequest(`Parameter kind must be one of ${KINDS.join(', ')}, got ${echo(kind)}`)
}

import type { Lexicons } from '@atproto/lexicon'
import { KINDS, PREFIXED_CODE, byCodePrefix, type Kind } from '../collections/index.js'
import type { CursorCodec } from './cursor.js'
import type { FeedRow, ReadModel } from './read-model.js'
import type { ViewCache } from './views.js'
import { XrpcError, echo, invalidRequest } from './xrpc.js'
import type * as GetProfile from '../lexicon/types/computer/aesthetic/actor/getProfile.js'
import type * as GetAuthorFeed from '../lexicon/types/computer/aesthetic/media/getAuthorFeed.js'
import type * as GetFeed from '../lexicon/types/computer/aesthetic/media/getFeed.js'
import type * as ResolveCode from '../lexicon/types/computer/aesthetic/media/resolveCode.js'

/** A query method: decoded, lexicon-valid params in (`P`, the lexicon's generated `QueryParams`), the JSON body out (UTF-8). */
export type Method<P = any> = (params: P) => Promise<Buffer>

export interface MethodDef<P = any> {
  handler: Method<P>
  /** `Cache-Control: public, max-age=…` of a successful answer, in seconds. */
  maxAge: number
  /** The lexicons defining the method's parameters; default AC's own (src/lexicon). */
  lexicons?: Lexicons
  /** Checks the request's `Authorization` header before the handler runs; throws an XrpcError (401) to refuse it. */
  auth?(authorization: string | undefined): Promise<void>
}

/**
 * Largest feed page, in UTF-8 bytes of item views: a page stops before the item that would pass
 * it (and carries a cursor from there), so an answer weighs at most this plus one item. With
 * long texts cut in lists (LIST_TEXT_MAX_BYTES) a page of 100 items of the heaviest records is
 * about this size; it was 20 MB (issue 15).
 */
export const MAX_PAGE_BYTES = 256 * 1024

/**
 * A method's definition checked against its lexicon's generated parameter type (src/lexicon/types,
 * from `npm run codegen`): a handler reading a parameter the lexicon does not define, or with
 * another type, does not compile.
 */
export function method<P>(def: MethodDef<P>): MethodDef {
  return def
}

const ITEMS_OPEN = Buffer.from('{"items":[')
const ITEM_OPEN = Buffer.from('{"item":')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from('}')

/**
 * The public contract (lexicons/computer/aesthetic/{media,actor}/*.json), by NSID. Handlers read
 * the index through the read model (prepared statements, on SQLite or PostgreSQL) and reject with
 * {@link XrpcError} for the lexicon's named errors.
 */
export function createMethods(index: ReadModel, views: ViewCache, cursors: CursorCodec): Record<string, MethodDef> {
  /**
   * `{ items, cursor? }`: list views of the first `limit` rows, fewer when the page would pass
   * {@link MAX_PAGE_BYTES}; a cursor after the last row served when more rows remain. The rows
   * come from one range scan of a covering feed index; their views are cached buffers, or, on a
   * miss, the views the ingest stored with the rows completed with the row's `indexedAt` and
   * current handle (no record parsed; see {@link ViewCache}).
   */
  const page = async (rows: FeedRow[], limit: number): Promise<Buffer> => {
    const parts: Buffer[] = [ITEMS_OPEN]
    let bytes = 0
    let served = 0
    const listed = await views.views(rows.slice(0, limit), 'list')
    for (const view of listed) {
      if (view && bytes > 0 && bytes + view.length > MAX_PAGE_BYTES) break
      if (view) {
        if (bytes > 0) parts.push(COMMA)
        parts.push(view)
        bytes += view.length
      }
      served++
    }
    parts.push(Buffer.from(served < rows.length ? `],"cursor":"${cursors.encode(rows[served - 1])}"}` : ']}'))
    return Buffer.concat(parts)
  }
  const actorOrThrow = async (actor: string) => {
    const found = await index.findActor(actor)
    if (!found) throw new XrpcError(400, 'ActorNotFound', `No indexed actor is ${echo(actor)}`)
    return found
  }

  return {
    /** `{ item }` (whole: long text uncut) for `#code` painting, `$code` KidLisp, `!code` tape. Errors: InvalidCode, NotFound. */
    'computer.aesthetic.media.resolveCode': method<ResolveCode.QueryParams>({
      maxAge: 60,
      async handler({ code }) {
        const match = PREFIXED_CODE.exec(code)
        if (!match) throw new XrpcError(400, 'InvalidCode', `Code must be #, $ or ! followed by 1-10 letters or digits, got ${echo(code)}`)
        const row = await index.codeWinner(byCodePrefix.get(match[1])!.kind, match[2])
        const view = row && row.status === null ? await views.view(row, 'whole') : undefined
        if (!view) throw new XrpcError(400, 'NotFound', `No item has the code ${code}`)
        return Buffer.concat([ITEM_OPEN, view, CLOSE])
      },
    }),
    /** All items, newest `when` first, long texts cut. Errors: InvalidRequest (kind), InvalidCursor (not signed by this AppView). */
    'computer.aesthetic.media.getFeed': method<GetFeed.QueryParams>({
      maxAge: 10,
      async handler({ kind, limit, cursor }) {
        return page(await index.feedPage({ kind: checkKind(kind), limit, after: cursors.decode(cursor) }), limit)
      },
    }),
    /** One author's items, newest `when` first. Errors: ActorNotFound, InvalidCursor. */
    'computer.aesthetic.media.getAuthorFeed': method<GetAuthorFeed.QueryParams>({
      maxAge: 10,
      async handler({ actor, kind, limit, cursor }) {
        const k = checkKind(kind)
        const after = cursors.decode(cursor)
        return page(await index.feedPage({ did: (await actorOrThrow(actor)).did, kind: k, limit, after }), limit)
      },
    }),
    /** `{ did, handle?, counts, latestMood? }` (the mood whole: one item, at most 5,000 graphemes). Errors: ActorNotFound. */
    'computer.aesthetic.actor.getProfile': method<GetProfile.QueryParams>({
      maxAge: 30,
      async handler({ actor }) {
        const { did, handle } = await actorOrThrow(actor)
        const [counts, [mood]] = await Promise.all([index.countsByKind(did), index.feedPage({ did, kind: 'mood', limit: 1 })])
        const profile = JSON.stringify({ did, ...(handle ? { handle } : {}), counts } satisfies Omit<GetProfile.OutputSchema, 'latestMood'>)
        const latest = mood && (await views.view(mood, 'whole'))
        return latest ? Buffer.concat([Buffer.from(`${profile.slice(0, -1)},"latestMood":`), latest, CLOSE]) : Buffer.from(profile)
      },
    }),
  }
}

/** `kind` is open (`knownValues`) in the lexicon; the AppView serves only AC's kinds (KINDS). */
function checkKind(kind: string | undefined): Kind | undefined {
  if (kind === undefined || (KINDS as readonly string[]).includes(kind)) return kind as Kind | undefined
  throw invalidRequest(`Parameter kind must be one of ${KINDS.join(', ')}, got ${echo(kind)}`)
}

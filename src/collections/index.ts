import { kidlisp } from './kidlisp.js'
import { mood } from './mood.js'
import { news } from './news.js'
import { painting } from './painting.js'
import { paper } from './paper.js'
import { piece } from './piece.js'
import { tape } from './tape.js'
import type { Collection, Kind, MirroredCollection } from './types.js'

export * from './types.js'
export { readDoc } from './source.js'

/**
 * Every AC kind, in the order feeds and summaries list them. Adding a kind = adding its module
 * here (and its name to KINDS in types.ts).
 */
export const collections: Collection[] = [painting, mood, piece, kidlisp, tape, news, paper]

/** The kinds the writer mirrors from MongoDB. */
export const mirrored: MirroredCollection[] = collections.filter((c): c is MirroredCollection => 'mongo' in c)

export const byKind = new Map<Kind, Collection>(collections.map((c) => [c.kind, c]))
export const byNsid = new Map<string, Collection>(collections.map((c) => [c.nsid, c]))
export const byMongo = new Map<string, MirroredCollection>(mirrored.map((c) => [c.mongo, c]))
export const byCodePrefix = new Map<string, Collection>(collections.filter((c) => c.codePrefix).map((c) => [c.codePrefix!, c]))

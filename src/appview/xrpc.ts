import { lexicons } from '../lexicon/lexicons.js'

/**
 * An XRPC error answer: `{ error, message }` with an HTTP status (ATProto XRPC spec).
 * 400 for InvalidRequest and a method's named errors.
 */
export class XrpcError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message)
  }
}

export const invalidRequest = (message: string) => new XrpcError(400, 'InvalidRequest', message)

interface ParamDef {
  type: string
}

/**
 * Decodes a query string into the typed params of `nsid` (integers, booleans, strings) and
 * validates them against its lexicon, applying defaults.
 * @throws XrpcError 400 InvalidRequest naming the bad parameter.
 */
export function decodeParams(nsid: string, query: Record<string, unknown>): Record<string, unknown> {
  const def = lexicons.getDefOrThrow(nsid) as { parameters?: { properties: Record<string, ParamDef> } }
  const props = def.parameters?.properties ?? {}
  const params: Record<string, unknown> = {}
  for (const [name, raw] of Object.entries(query)) {
    const prop = props[name]
    if (!prop) continue // unknown params are ignored, as the XRPC spec allows
    if (Array.isArray(raw)) throw invalidRequest(`Parameter ${name} was given more than once`)
    const value = String(raw)
    if (prop.type === 'integer') {
      if (!/^-?\d{1,15}$/.test(value)) throw invalidRequest(`Parameter ${name} must be an integer`)
      params[name] = Number(value)
    } else if (prop.type === 'boolean') {
      if (value !== 'true' && value !== 'false') throw invalidRequest(`Parameter ${name} must be true or false`)
      params[name] = value === 'true'
    } else {
      params[name] = value
    }
  }
  try {
    return lexicons.assertValidXrpcParams(nsid, params) as Record<string, unknown>
  } catch (err) {
    throw invalidRequest((err as Error).message)
  }
}

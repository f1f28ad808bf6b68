import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { XrpcError } from './xrpc.js'
import { sendXrpcError } from './http.js'

/** Who may use the operator endpoints (the dashboard, its API and `/metrics`). */
export interface OperatorAccess {
  /** ADMIN_PASSWORD: required as HTTP Basic (any user name) or `Authorization: Bearer <password>`. */
  password?: string
  /** `ac-appview dev` only: open without a credential. */
  open?: boolean
}

/**
 * A Fastify `onRequest` hook guarding operator endpoints. They show what is not public (writer
 * problems name the Auth0 subjects of people without a PDS account), and behind AC's reverse
 * proxy every request comes from loopback, so no address is trusted: every request must carry
 * ADMIN_PASSWORD, compared in constant time. Without ADMIN_PASSWORD the endpoints are closed
 * (403), except in `dev`. A wrong or missing credential gets 401 with a Basic challenge, so a
 * browser asks for it.
 */
export function operatorGuard(access: OperatorAccess) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    if (access.open) return
    if (access.password === undefined)
      return sendXrpcError(reply, new XrpcError(403, 'OperatorDisabled', 'Operator endpoints are closed: set ADMIN_PASSWORD to use them'))
    if (checkCredential(access, req.headers.authorization)) return
    return sendXrpcError(
      reply.header('www-authenticate', 'Basic realm="ac-appview operator", charset="UTF-8"'),
      new XrpcError(401, 'AuthenticationRequired', 'Operator endpoints need ADMIN_PASSWORD (HTTP Basic or Bearer)'),
    )
  }
}

/** Whether an `Authorization` header carries the operator credential (always true when `open`). */
export function checkCredential(access: OperatorAccess, authorization: string | undefined): boolean {
  if (access.open) return true
  if (access.password === undefined) return false
  const given = credential(authorization)
  return given !== undefined && timingSafeEqual(digest(given), digest(access.password))
}

/** The password of a Basic (any user name) or Bearer authorization header. */
function credential(header: string | undefined): string | undefined {
  const [scheme, value] = header?.split(' ', 2) ?? []
  if (!value) return undefined
  if (scheme.toLowerCase() === 'bearer') return value
  if (scheme.toLowerCase() !== 'basic') return undefined
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon < 0 ? undefined : decoded.slice(colon + 1)
}

/** Equal-length digests, so comparing them takes the same time whatever was sent. */
function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest()
}

/**
 * GENERATED CODE - DO NOT MODIFY
 */
import { type ValidationResult, BlobRef } from '@atproto/lexicon'
import { CID } from 'multiformats/cid'
import { validate as _validate } from '../../../../lexicons.js'
import {
  type $Typed,
  is$typed as _is$typed,
  type OmitKey,
} from '../../../../util.js'
import type * as ComputerAestheticMediaDefs from '../media/defs.js'

const is$typed = _is$typed,
  validate = _validate
const id = 'computer.aesthetic.actor.getProfile'

export type QueryParams = {
  /** Handle or DID. */
  actor: string
}
export type InputSchema = undefined
export type OutputSchema = ProfileView
export type HandlerInput = void

export interface HandlerSuccess {
  encoding: 'application/json'
  body: OutputSchema
  headers?: { [key: string]: string }
}

export interface HandlerError {
  status: number
  message?: string
  error?: 'ActorNotFound'
}

export type HandlerOutput = HandlerError | HandlerSuccess

export interface ProfileView {
  $type?: 'computer.aesthetic.actor.getProfile#profileView'
  did: string
  handle?: string
  counts: Counts
  latestMood?: ComputerAestheticMediaDefs.ItemView
}

const hashProfileView = 'profileView'

export function isProfileView<V>(v: V) {
  return is$typed(v, id, hashProfileView)
}

export function validateProfileView<V>(v: V) {
  return validate<ProfileView & V>(v, id, hashProfileView)
}

export interface Counts {
  $type?: 'computer.aesthetic.actor.getProfile#counts'
  painting: number
  mood: number
  piece: number
  kidlisp: number
  tape: number
  news: number
  paper: number
}

const hashCounts = 'counts'

export function isCounts<V>(v: V) {
  return is$typed(v, id, hashCounts)
}

export function validateCounts<V>(v: V) {
  return validate<Counts & V>(v, id, hashCounts)
}

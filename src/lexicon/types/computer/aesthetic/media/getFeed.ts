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
import type * as ComputerAestheticMediaDefs from './defs.js'

const is$typed = _is$typed,
  validate = _validate
const id = 'computer.aesthetic.media.getFeed'

export type QueryParams = {
  /** Only this kind; all kinds when absent. */
  kind?:
    | 'painting'
    | 'mood'
    | 'piece'
    | 'kidlisp'
    | 'tape'
    | 'news'
    | 'paper'
    | (string & {})
  limit: number
  cursor?: string
}
export type InputSchema = undefined
export type OutputSchema = ComputerAestheticMediaDefs.FeedOutput
export type HandlerInput = void

export interface HandlerSuccess {
  encoding: 'application/json'
  body: OutputSchema
  headers?: { [key: string]: string }
}

export interface HandlerError {
  status: number
  message?: string
  error?: 'InvalidCursor'
}

export type HandlerOutput = HandlerError | HandlerSuccess

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
const id = 'computer.aesthetic.media.resolveCode'

export type QueryParams = {
  /** Prefix plus 1-10 code characters, e.g. '#WDv'. */
  code: string
}
export type InputSchema = undefined

export interface OutputSchema {
  item: ComputerAestheticMediaDefs.ItemView
}

export type HandlerInput = void

export interface HandlerSuccess {
  encoding: 'application/json'
  body: OutputSchema
  headers?: { [key: string]: string }
}

export interface HandlerError {
  status: number
  message?: string
  error?: 'InvalidCode' | 'NotFound'
}

export type HandlerOutput = HandlerError | HandlerSuccess

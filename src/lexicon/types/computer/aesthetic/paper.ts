/**
 * GENERATED CODE - DO NOT MODIFY
 */
import { type ValidationResult, BlobRef } from '@atproto/lexicon'
import { CID } from 'multiformats/cid'
import { validate as _validate } from '../../../lexicons.js'
import {
  type $Typed,
  is$typed as _is$typed,
  type OmitKey,
} from '../../../util.js'

const is$typed = _is$typed,
  validate = _validate
const id = 'computer.aesthetic.paper'

export interface Main {
  $type: 'computer.aesthetic.paper'
  title: string
  slug: string
  pdfUrl: string
  /** Languages the paper's PDF exists in (`<slug>-<lang>.pdf` besides English). */
  languages?: string[]
  revisions?: number
  when: string
  /** AC's key for the paper (its folder, e.g. `arxiv-ac`). */
  ref?: string
  [k: string]: unknown
}

const hashMain = 'main'

export function isMain<V>(v: V) {
  return is$typed(v, id, hashMain)
}

export function validateMain<V>(v: V) {
  return validate<Main & V>(v, id, hashMain, true)
}

export {
  type Main as Record,
  isMain as isRecord,
  validateMain as validateRecord,
}

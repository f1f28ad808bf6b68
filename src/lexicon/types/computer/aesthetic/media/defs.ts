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

const is$typed = _is$typed,
  validate = _validate
const id = 'computer.aesthetic.media.defs'

/** The kind of an AC item: the last segment of its record collection. */
export type Kind =
  | 'painting'
  | 'mood'
  | 'piece'
  | 'kidlisp'
  | 'tape'
  | 'news'
  | 'paper'
  | (string & {})

export interface AuthorView {
  $type?: 'computer.aesthetic.media.defs#authorView'
  did: string
  /** Absent when the handle is unknown or does not verify. */
  handle?: string
}

const hashAuthorView = 'authorView'

export function isAuthorView<V>(v: V) {
  return is$typed(v, id, hashAuthorView)
}

export function validateAuthorView<V>(v: V) {
  return validate<AuthorView & V>(v, id, hashAuthorView)
}

/** One AC item as served by the AppView. Which optional fields appear depends on `kind` (see the project's design: painting has code, slug, acUrl, imageUrl, recordingUrl?, thumb?; mood has mood; piece has slug; kidlisp has code, source, acUrl; tape has code, slug, acUrl, video?, thumb?; news has headline, body?, link?, acUrl?; paper has title, slug, pdfUrl?, languages?, revisions?). URLs a record carries (imageUrl, recordingUrl) appear only when https on AC's or the AppView's configured origins. */
export interface ItemView {
  $type?: 'computer.aesthetic.media.defs#itemView'
  uri: string
  cid: string
  kind: Kind
  author: AuthorView
  when: string
  indexedAt: string
  /** Short code without its prefix (#, $ or !). */
  code?: string
  slug?: string
  acUrl?: string
  imageUrl?: string
  recordingUrl?: string
  /** URL of the thumbnail blob. */
  thumb?: string
  mood?: string
  source?: string
  /** URL of the video blob. */
  video?: string
  /** news: the post's headline. */
  headline?: string
  /** news: the post's text, if any. */
  body?: string
  /** news: the https URL the post links, if any. */
  link?: string
  /** paper: its title. */
  title?: string
  /** paper: its PDF, on AC's origins. */
  pdfUrl?: string
  /** paper: the languages its PDF exists in. */
  languages?: string[]
  /** paper: how often it was revised. */
  revisions?: number
  /** Present and true when a long text (KidLisp `source`, `mood`, news `body`) was cut to keep a feed page small; `resolveCode` and the record itself hold it whole. */
  truncated?: boolean
}

const hashItemView = 'itemView'

export function isItemView<V>(v: V) {
  return is$typed(v, id, hashItemView)
}

export function validateItemView<V>(v: V) {
  return validate<ItemView & V>(v, id, hashItemView)
}

export interface FeedOutput {
  $type?: 'computer.aesthetic.media.defs#feedOutput'
  items: ItemView[]
  /** Opaque; pass back to get the next page. Absent on the last page. */
  cursor?: string
}

const hashFeedOutput = 'feedOutput'

export function isFeedOutput<V>(v: V) {
  return is$typed(v, id, hashFeedOutput)
}

export function validateFeedOutput<V>(v: V) {
  return validate<FeedOutput & V>(v, id, hashFeedOutput)
}

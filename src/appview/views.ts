import { byKind, type Kind, type ViewContext } from '../collections/index.js'
import type { ItemTable } from '../db/index.js'

/** An item row joined with its author's actor row. */
export type ItemRow = Pick<ItemTable, 'uri' | 'cid' | 'did' | 'kind' | 'indexedAt' | 'record'> & {
  handle: string | null
  pds: string | null
}

export interface ViewOptions {
  /** AC's public site, for permalinks. */
  publicUrl: string
  /** `{did}` and `{cid}` are replaced; unset means the author's PDS `getBlob`. */
  blobCdnTemplate?: string
}

/**
 * `computer.aesthetic.media.defs#itemView` for one row: the common fields plus the kind's own
 * (see src/collections/<kind>.ts). Absent optional fields are left out.
 */
export function itemView(row: ItemRow, opts: ViewOptions): Record<string, unknown> {
  const record = JSON.parse(row.record) as Record<string, unknown>
  const ctx: ViewContext = {
    publicUrl: opts.publicUrl,
    blobUrl: (did, cid) => blobUrl(did, cid, row.pds, opts.blobCdnTemplate),
  }
  const view: Record<string, unknown> = {
    uri: row.uri,
    cid: row.cid,
    kind: row.kind,
    author: row.handle ? { did: row.did, handle: row.handle } : { did: row.did },
    when: record.when,
    indexedAt: row.indexedAt,
  }
  for (const [k, v] of Object.entries(byKind.get(row.kind as Kind)!.view(row.did, record, ctx))) if (v !== undefined) view[k] = v
  return view
}

function blobUrl(did: string, cid: string, pds: string | null, template?: string): string | undefined {
  if (template) return template.replaceAll('{did}', encodeURIComponent(did)).replaceAll('{cid}', encodeURIComponent(cid))
  if (!pds) return undefined
  return `${pds}/xrpc/com.atproto.sync.getBlob?did=${encodeURIComponent(did)}&cid=${encodeURIComponent(cid)}`
}

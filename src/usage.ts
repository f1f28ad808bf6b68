import { KINDS, type Kind } from './collections/types.js'

/** A mistake in a command's arguments: the CLI prints its message alone and exits with code 2. */
export class UsageError extends Error {}

/** Parses `--only painting,mood`. @throws UsageError naming an unknown kind and the accepted ones. */
export function parseKinds(value: string): Kind[] {
  const kinds = value
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean)
  const bad = kinds.filter((k) => !(KINDS as readonly string[]).includes(k))
  if (bad.length || !kinds.length)
    throw new UsageError(`unknown kind ${bad.join(', ') || '(none given)'}; expected a comma-separated list of ${KINDS.join(', ')}`)
  return kinds as Kind[]
}

/** The parts `ac-appview start` runs, in the order they stop (src/start.ts). */
export const PARTS = ['writer', 'ingest', 'appview'] as const
export type PartName = (typeof PARTS)[number]

/** Parses `--only writer,ingest`. @throws UsageError naming an unknown part and the accepted ones. */
export function parseParts(value: string): PartName[] {
  const parts = value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
  const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p))
  if (bad.length || !parts.length)
    throw new UsageError(`unknown part ${bad.join(', ') || '(none given)'}; expected a comma-separated list of ${PARTS.join(', ')}`)
  return parts as PartName[]
}

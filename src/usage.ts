import { KINDS, type Kind } from './collections/types.js'

/** A mistake in a command's arguments: the CLI prints its message alone and exits with code 2. */
export class UsageError extends Error {}

/** Parses `--only painting,mood`. @throws UsageError naming an unknown kind and the accepted ones. */
export function parseKinds(value: string): Kind[] {
  const kinds = value.split(',').map((k) => k.trim()).filter(Boolean)
  const bad = kinds.filter((k) => !(KINDS as readonly string[]).includes(k))
  if (bad.length || !kinds.length) throw new UsageError(`unknown kind ${bad.join(', ') || '(none given)'}; expected a comma-separated list of ${KINDS.join(', ')}`)
  return kinds as Kind[]
}

/**
 * AC's rule for the first label of a user's PDS handle (docs/data-model.md, "PDS accounts"):
 * the AC handle lowercased with `.` and `_` turned into `-`; when that is not a valid label for the PDS (3-18 characters of a-z, 0-9 and inner `-`), the user code (`ac25wila`).
 */
export function pdsHandleLabel(acHandle: string | undefined, userCode: string): string {
  const label = acHandle?.toLowerCase().replace(/[._]/g, '-')
  return label && /^[a-z0-9](?:[a-z0-9-]{1,16})[a-z0-9]$/.test(label) ? label : userCode.toLowerCase()
}

/** The PDS handle for `label` in the domain of `currentHandle` (`jeffrey.at.aesthetic.computer` → `at.aesthetic.computer`). */
export function pdsHandleFor(label: string, currentHandle: string): string {
  return `${label}.${currentHandle.slice(currentHandle.indexOf('.') + 1)}`
}

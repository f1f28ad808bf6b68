import { createWriteStream } from 'node:fs'
import path from 'node:path'
import { Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import yauzl, { type Entry, type ZipFile } from 'yauzl'

/** Raised when a ZIP is refused; the message names the archive's fault (and the entry, if any). */
export class ZipError extends Error {}

/** Resource limits for one archive; sizes in bytes. */
export interface ZipLimits {
  /** Entries in the central directory. */
  maxEntries: number
  /** Inflated bytes of one entry. */
  maxEntryBytes: number
  /** Inflated bytes of all entries together. */
  maxTotalBytes: number
  /** Inflated bytes per compressed byte of one entry, checked once the entry passes `ratioFloorBytes`. */
  maxRatio: number
  /** Entries smaller than this are never refused for their ratio (small JSON compresses well). */
  ratioFloorBytes: number
}

export interface ExtractOptions {
  limits: ZipLimits
  /** The only entry names accepted; every name must be flat (no folders). */
  allowed: RegExp
  /** Shown in errors to say what the accepted names are, e.g. "frame-NNNNN.png, timing.json". */
  allowedLabel: string
}

/**
 * Extracts a flat ZIP held in memory into `dir` (which must exist and be empty), refusing
 * anything unsafe before or while it is written:
 * - more entries than `maxEntries` (counted from the central directory);
 * - names with a backslash, an absolute path, a `..` segment, a folder, or any name that
 *   `allowed` does not match; duplicate names; encrypted entries;
 * - declared sizes over `maxEntryBytes` / `maxTotalBytes` (from the headers), and the same
 *   limits plus `maxRatio` enforced on the bytes actually inflated, so a lying header cannot
 *   get past them.
 * @returns the names written, in archive order.
 * @throws ZipError naming what was wrong (the archive is not a ZIP, or which entry broke which rule).
 */
export async function extractZip(zip: Uint8Array, dir: string, opts: ExtractOptions): Promise<string[]> {
  const archive = await openZip(zip)
  try {
    if (archive.entryCount > opts.limits.maxEntries) {
      throw new ZipError(`ZIP has ${archive.entryCount} entries, more than the limit of ${opts.limits.maxEntries}`)
    }
    const written: string[] = []
    const budget = { total: 0 }
    for await (const entry of archive.eachEntry()) {
      const name = checkEntry(entry, written, opts)
      await writeEntry(archive, entry, name, path.join(dir, name), opts.limits, budget)
      written.push(name)
    }
    return written
  } catch (err) {
    throw err instanceof ZipError ? err : new ZipError(`ZIP is corrupt: ${(err as Error).message}`)
  } finally {
    archive.close()
  }
}

async function openZip(zip: Uint8Array): Promise<ZipFile> {
  try {
    // Raw names (decodeStrings: false) so that our own checks, not yauzl's, name each fault.
    return await yauzl.fromBufferPromise(Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength), {
      lazyEntries: true,
      decodeStrings: false,
      validateEntrySizes: true,
    })
  } catch (err) {
    throw new ZipError(`not a valid ZIP: ${(err as Error).message}`)
  }
}

/** The entry's name once every name and header rule holds. */
function checkEntry(entry: Entry, seen: string[], opts: ExtractOptions): string {
  const name = entry.fileNameRaw.toString('utf8')
  const refuse = (why: string) => new ZipError(`ZIP entry ${JSON.stringify(name)}: ${why}`)
  if (name.includes('\\')) throw refuse('backslashes are not allowed in names')
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw refuse('absolute paths are not allowed')
  if (name.split('/').includes('..')) throw refuse('path traversal (..) is not allowed')
  if (name.includes('/')) throw refuse('folders are not allowed; entries must be flat')
  if (!opts.allowed.test(name)) throw refuse(`unexpected file; only ${opts.allowedLabel} are allowed`)
  if (seen.includes(name)) throw refuse('appears twice')
  if (entry.isEncrypted()) throw refuse('encrypted entries are not supported')
  if (entry.uncompressedSize > opts.limits.maxEntryBytes) {
    throw refuse(`declares ${entry.uncompressedSize} bytes, more than the per-entry limit of ${opts.limits.maxEntryBytes}`)
  }
  return name
}

/** Inflates one entry to `file`, counting bytes as they come out; see {@link ZipLimits}. */
async function writeEntry(archive: ZipFile, entry: Entry, name: string, file: string, limits: ZipLimits, budget: { total: number }): Promise<void> {
  const input = await archive.openReadStreamPromise(entry)
  let size = 0
  const limiter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      size += chunk.length
      budget.total += chunk.length
      const fault = overLimit(size, budget.total, entry.compressedSize, limits)
      done(fault ? new ZipError(`ZIP entry ${JSON.stringify(name)}: ${fault}`) : null, chunk)
    },
  })
  try {
    await pipeline(input, limiter, createWriteStream(file, { flags: 'wx' }))
  } catch (err) {
    throw err instanceof ZipError ? err : new ZipError(`ZIP entry ${JSON.stringify(name)} is corrupt: ${(err as Error).message}`)
  }
}

/** Which limit `inflated` bytes of an entry (and `total` of the archive) break, if any. */
function overLimit(inflated: number, total: number, compressed: number, limits: ZipLimits): string | null {
  if (inflated > limits.maxEntryBytes) return `inflates to more than the per-entry limit of ${limits.maxEntryBytes} bytes`
  if (total > limits.maxTotalBytes) return `the archive inflates to more than the total limit of ${limits.maxTotalBytes} bytes`
  if (inflated > limits.ratioFloorBytes && inflated > limits.maxRatio * Math.max(compressed, 1)) {
    return `compression ratio over ${limits.maxRatio}:1 (${compressed} compressed bytes inflate to more than ${inflated}); refused as a ZIP bomb`
  }
  return null
}

/**
 * SSRF-safe access to AC's object storage. Only URLs under AC_STORAGE_URL (any bucket) are
 * fetched; redirects are refused; every request has a timeout and a byte cap.
 */
export interface MediaClient {
  bucketUrl(bucket: string): string
  exists(url: string): Promise<boolean>
  fetchBytes(url: string, maxBytes?: number): Promise<Uint8Array>
}

export class MediaError extends Error {}

export interface MediaOptions {
  /** e.g. `https://{bucket}.sfo3.digitaloceanspaces.com` or `http://127.0.0.1:9000/{bucket}`. */
  storageTemplate: string
  maxBytes: number
  timeoutMs: number
}

const BUCKET = '[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]'

/** Creates the media client; see {@link MediaClient}. */
export function createMediaClient(opts: MediaOptions): MediaClient {
  const [before, after] = opts.storageTemplate.replace(/\/+$/, '').split('{bucket}')
  const allowed = new RegExp(`^${escape(before)}${BUCKET}${escape(after)}/`)

  function check(url: string): URL {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new MediaError(`not a URL: ${url}`)
    }
    // Compare the normalised form, so `..` or encoded tricks cannot leave the storage prefix.
    if (!allowed.test(parsed.href) || parsed.username || parsed.password) throw new MediaError(`not an allowed storage URL: ${url}`)
    return parsed
  }

  async function request(url: string, method: 'GET' | 'HEAD'): Promise<Response> {
    const target = check(url)
    try {
      return await fetch(target, { method, redirect: 'error', signal: AbortSignal.timeout(opts.timeoutMs) })
    } catch (err) {
      throw new MediaError(`${method} ${url} failed: ${(err as Error).message}`)
    }
  }

  return {
    bucketUrl(bucket) {
      if (!new RegExp(`^${BUCKET}$`).test(bucket)) throw new MediaError(`not a bucket name: ${bucket}`)
      return `${before}${bucket}${after}`
    },
    async exists(url) {
      const res = await request(url, 'HEAD')
      if (res.status >= 500) throw new MediaError(`HEAD ${url}: HTTP ${res.status}`)
      return res.ok
    },
    async fetchBytes(url, maxBytes = opts.maxBytes) {
      const res = await request(url, 'GET')
      if (!res.ok || !res.body) {
        await res.body?.cancel()
        throw new MediaError(`GET ${url}: HTTP ${res.status}`)
      }
      const declared = Number(res.headers.get('content-length') ?? 0)
      if (declared > maxBytes) {
        await res.body.cancel()
        throw new MediaError(`GET ${url}: ${declared} bytes exceeds the ${maxBytes}-byte limit`)
      }
      const chunks: Uint8Array[] = []
      let size = 0
      for await (const chunk of res.body) {
        size += chunk.length
        if (size > maxBytes) throw new MediaError(`GET ${url}: more than the ${maxBytes}-byte limit`)
        chunks.push(chunk)
      }
      return Buffer.concat(chunks)
    },
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

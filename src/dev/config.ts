import path from 'node:path'

/**
 * The environment that points every part of ac-appview at a local network (dev and tests):
 * MongoDB, the PDS (also the handle resolver), the PLC, the media server as object storage, and
 * a work folder for the index and the writer's ledger. Identity resolution may use loopback.
 */
export function localEnv(opts: { mongoUri: string; mongoDb: string; pdsUrl: string; plcUrl: string; mediaUrl: string; work: string }): Record<string, string> {
  return {
    MONGODB_URI: opts.mongoUri,
    MONGODB_DB: opts.mongoDb,
    PDS_URL: opts.pdsUrl,
    PLC_URL: opts.plcUrl,
    HANDLE_RESOLVER_URL: opts.pdsUrl,
    ALLOW_PRIVATE_NETWORK: 'true',
    AC_STORAGE_URL: `${opts.mediaUrl}/{bucket}`,
    INDEX_DB_PATH: path.join(opts.work, 'index.sqlite'),
    DATA_DIR: path.join(opts.work, 'data'),
  }
}

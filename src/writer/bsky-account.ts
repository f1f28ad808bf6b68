import { requireConfig, type Config } from '../config.js'
import { configuredIdentity } from '../identity.js'
import type { Logger } from '../log.js'
import type { AccountCredentials } from './repo.js'

/** An account to log in to, and the PDS its repo lives on. */
export interface HostedAccount {
  pdsUrl: string
  credentials: AccountCredentials
}

/**
 * AC's own account on Bluesky (AC_BSKY_DID with AC_BSKY_PASSWORD, an app password): it publishes
 * the feed generator records and posts `writer share --as account`. Its PDS is AC_BSKY_PDS_URL,
 * else the one its DID document names (resolved through PLC_URL).
 * @throws ConfigError when AC_BSKY_DID or AC_BSKY_PASSWORD is unset; Error when the PDS cannot be found.
 */
export async function bskyAccount(cfg: Config, log: Logger): Promise<HostedAccount> {
  requireConfig(cfg, 'AC_BSKY_DID', 'AC_BSKY_PASSWORD')
  const credentials = { did: cfg.AC_BSKY_DID, password: cfg.AC_BSKY_PASSWORD }
  if (cfg.AC_BSKY_PDS_URL) return { pdsUrl: cfg.AC_BSKY_PDS_URL, credentials }
  try {
    const { pds } = await configuredIdentity(cfg, log).resolver.did.resolveAtprotoData(cfg.AC_BSKY_DID)
    return { pdsUrl: pds, credentials }
  } catch (err) {
    throw new Error(`could not find the PDS of AC_BSKY_DID ${cfg.AC_BSKY_DID} (${(err as Error).message}); set AC_BSKY_PDS_URL`, { cause: err })
  }
}

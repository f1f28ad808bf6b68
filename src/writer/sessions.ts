import type { Logger } from '../log.js'
import type { Account } from './accounts.js'
import { PdsHealth, RepoClient } from './repo.js'

/**
 * Logged-in {@link RepoClient}s, one per account, made on first use (concurrent callers share the
 * login) and kept: the PDS allows 30 logins per account per 5 minutes. A failed login is not kept,
 * so the next use tries again. All clients share one {@link PdsHealth}: once the PDS has proved
 * unreachable, further calls fail fast instead of each spending a full series of retries.
 */
export class Sessions {
  private readonly clients = new Map<string, Promise<RepoClient>>()
  readonly health = new PdsHealth()

  /**
   * @param retries attempts after a network error or 5xx (live mode uses few: it retries whole changes itself)
   */
  constructor(
    private readonly pdsUrl: string,
    private readonly log: Logger,
    private readonly retries?: number,
  ) {}

  /** The account's client, logging in if needed. @throws when the PDS refuses the login or cannot be reached. */
  get(account: Account): Promise<RepoClient> {
    let client = this.clients.get(account.did)
    if (!client) {
      client = RepoClient.login(this.pdsUrl, account, this.log, { retries: this.retries, health: this.health })
      this.clients.set(account.did, client)
      client.catch(() => this.clients.delete(account.did))
    }
    return client
  }

  /** A client reading the account's repo without logging in ({@link RepoClient.reader}), sharing this run's retries and PDS health. */
  reader(account: Account): RepoClient {
    return RepoClient.reader(this.pdsUrl, account.did, this.log, { retries: this.retries, health: this.health })
  }

  /** Drops one account's client (its password changed, or the account is gone), or every client. */
  forget(did?: string) {
    if (did) this.clients.delete(did)
    else this.clients.clear()
  }

  close() {
    this.clients.clear()
  }
}

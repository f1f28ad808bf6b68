import { sql } from 'kysely'
import { KINDS, type Kind } from '../collections/index.js'
import type { IndexDb } from '../db/index.js'
import type { FeedPosition } from '../appview/cursor.js'
import { earliestFirst, type IndexReader } from '../appview/queries.js'

/** A post of a feed page: its uri and sort time. */
export interface PostRow {
  uri: string
  sortAt: string
}

/** A post that points at items of one kind, with those pointers: a JSON array of `[via, key]`. */
export interface RefGroup {
  uri: string
  sortAt: string
  refs: string
}

/**
 * The feed generator's read path over the index's `post` and `post_ref` tables (migration 004),
 * through the AppView's {@link IndexReader} (prepared statements on its read-only connection).
 * Posts of hidden authors (taken down, suspended, deactivated: `actor.status`) never appear.
 */
export class FeedReader {
  constructor(
    private readonly index: IndexReader,
    private readonly qb: IndexDb,
  ) {}

  /**
   * Up to `limit` posts newest first (`sortAt`, then uri, descending) after `after`: those about
   * AC (`about`), or those by accounts on TRUSTED_PDS (`artists`: every post the index keeps of
   * such an account has an image, a video or an AC link).
   */
  posts(select: 'about' | 'artists', limit: number, after?: FeedPosition): PostRow[] {
    return this.index.all<PostRow>(
      `feed:posts:${select}${after ? ':a' : ''}`,
      (p) => {
        let q =
          select === 'about'
            ? this.qb.selectFrom('post').leftJoin('actor', 'actor.did', 'post.did').where('post.about', '=', p<number>('about'))
            : this.qb.selectFrom('post').innerJoin('actor', 'actor.did', 'post.did').where('actor.trusted', '=', p<number>('trusted'))
        q = q.where('actor.status', 'is', null)
        if (after) q = q.where((eb) => eb(eb.refTuple('post.sortAt', 'post.uri'), '<', eb.tuple(p('sortAt'), p('uri'))))
        return q.select(['post.uri', 'post.sortAt']).orderBy('post.sortAt', 'desc').orderBy('post.uri', 'desc').limit(p<number>('limit'))
      },
      { about: 1, trusted: 1, sortAt: after?.sortAt, uri: after?.uri, limit },
    )
  }

  /**
   * Up to `limit` posts newest first after `after` that point at items of `kind`, each with all
   * its pointers of that kind (read in index order from `post_ref_feed`, grouped per post).
   */
  refGroups(kind: string, limit: number, after?: FeedPosition): RefGroup[] {
    return this.index.all<RefGroup>(
      `feed:refs${after ? ':a' : ''}`,
      (p) => {
        let q = this.qb
          .selectFrom('post_ref')
          .leftJoin('actor', 'actor.did', 'post_ref.did')
          .where('post_ref.kind', '=', p('kind'))
          .where('actor.status', 'is', null)
        if (after) q = q.where((eb) => eb(eb.refTuple('post_ref.sortAt', 'post_ref.post'), '<', eb.tuple(p('sortAt'), p('uri'))))
        return q
          .select(['post_ref.post as uri', 'post_ref.sortAt', sql<string>`json_group_array(json_array(post_ref.via, post_ref.key))`.as('refs')])
          .groupBy(['post_ref.sortAt', 'post_ref.post'])
          .orderBy('post_ref.sortAt', 'desc')
          .orderBy('post_ref.post', 'desc')
          .limit(p<number>('limit'))
      },
      { kind, sortAt: after?.sortAt, uri: after?.uri, limit },
    )
  }

  /**
   * The AT-URI of the item of `kind` that `key` names (`via`: `code`, `slug` or `rkey`), by code
   * authority as `resolveCode` applies it: only repos on TRUSTED_PDS, earliest `when` first; the
   * winner must be visible (a hidden winner does not pass the name to the next claimant).
   * Undefined when no trusted item claims it, or for kinds without items (news).
   */
  target(kind: string, via: string, key: string): string | undefined {
    if (!(KINDS as readonly string[]).includes(kind)) return undefined
    const winner = via === 'code' ? this.index.codeWinner(kind as Kind, key) : this.claimant(kind as Kind, via === 'slug' ? 'imageSlug' : 'rkey', key)
    return winner && winner.status === null ? winner.uri : undefined
  }

  /** The earliest trusted item of `kind` whose `column` (the generated image slug, or the rkey) is `key`. */
  private claimant(kind: Kind, column: 'imageSlug' | 'rkey', key: string): { uri: string; status: string | null } | undefined {
    return this.index.get(
      `feed:claimant:${column}`,
      (p) =>
        earliestFirst(
          this.qb
            .selectFrom('item')
            .innerJoin('actor', 'actor.did', 'item.did')
            .select(['item.uri', 'actor.status'])
            .where('item.kind', '=', p('kind'))
            .where(sql.ref(`item.${column}`), '=', p('key'))
            .where('actor.trusted', '=', 1),
        ).limit(1),
      { kind, key },
    )
  }
}

import { sql } from 'kysely'
import type { FeedPosition } from '../appview/cursor.js'
import { earliestFirst, type ReadModel } from '../appview/read-model.js'

/** A post of a feed page: its uri and sort time. */
export interface PostRow {
  uri: string
  sortAt: string
}

/** A post that points at items of one kind, and the visible item it is joined to ('' or null: none). */
export interface KindRow {
  uri: string
  sortAt: string
  item: string | null
}

/**
 * The feed generator's read path over the index's `post` and `post_ref` tables (migration 004),
 * through the AppView's {@link ReadModel} (prepared statements, on SQLite or PostgreSQL).
 * Posts of hidden authors (taken down, suspended, deactivated: `actor.status`) never appear.
 */
export class FeedReader {
  constructor(private readonly index: ReadModel) {}

  private get qb() {
    return this.index.qb
  }

  /**
   * Up to `limit` posts newest first (`sortAt`, then uri, descending) after `after`: those about
   * AC (`about`), or those by accounts on TRUSTED_PDS (`artists`: every post the index keeps of
   * such an account has an image, a video or an AC link).
   */
  posts(select: 'about' | 'artists', limit: number, after?: FeedPosition): Promise<PostRow[]> {
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
   * Up to `limit` posts newest first after `after` that point at items of `kind` (read in index
   * order from `post_ref_feed`, one row per post), each with the item it is joined to: the AT-URI
   * of an item one of its pointers names, found by code authority as `resolveCode` applies it
   * (only repos on TRUSTED_PDS; the earliest `when` first; the winner's author must be visible,
   * a hidden winner does not pass the name on), or null when none resolves (yet). A code names
   * an item by `code`, a painting URL by its image slug, a mood URL by its rkey. Resolved in the
   * statement itself: one indexed lookup per pointer, no round trip per post.
   */
  kindPosts(kind: string, limit: number, after?: FeedPosition): Promise<KindRow[]> {
    return this.index.all<KindRow>(
      `feed:kind${after ? ':a' : ''}`,
      (p) => {
        let q = this.qb
          .selectFrom('post_ref')
          .leftJoin('actor as author', 'author.did', 'post_ref.did')
          .where('post_ref.kind', '=', p('kind'))
          .where('author.status', 'is', null)
        if (after) q = q.where((eb) => eb(eb.refTuple('post_ref.sortAt', 'post_ref.post'), '<', eb.tuple(p('sortAt'), p('uri'))))
        const winner = (column: 'item.code' | 'item.slug' | 'item.rkey') =>
          earliestFirst(
            this.qb
              .selectFrom('item')
              .innerJoin('actor', 'actor.did', 'item.did')
              .select(sql<string>`case when actor.status is null then item.uri else '' end`.as('uri'))
              .where('item.kind', '=', sql.ref<string>('post_ref.kind'))
              .where(column, '=', sql.ref<string>('post_ref.key'))
              .where('actor.trusted', '=', 1),
          ).limit(1)
        return q
          .select((eb) => [
            'post_ref.post as uri',
            'post_ref.sortAt',
            eb.fn
              .max<string | null>(
                eb
                  .case('post_ref.via')
                  .when('code')
                  .then(winner('item.code'))
                  .when('slug')
                  .then(winner('item.slug'))
                  .when('rkey')
                  .then(winner('item.rkey'))
                  .end(),
              )
              .as('item'),
          ])
          .groupBy(['post_ref.sortAt', 'post_ref.post'])
          .orderBy('post_ref.sortAt', 'desc')
          .orderBy('post_ref.post', 'desc')
          .limit(p<number>('limit'))
      },
      { kind, sortAt: after?.sortAt, uri: after?.uri, limit },
    )
  }
}

import { AtpAgent, RichText } from '@atproto/api'
import type { Db, Document } from 'mongodb'
import sharp from 'sharp'
import { requireConfig, type Config } from '../config.js'
import { POST_COLLECTION } from '../feeds/definitions.js'
import type { Logger } from '../log.js'
import { runShare } from '../services.js'
import { loadAccounts, type Account } from '../writer/accounts.js'

/** A post to make: who, what text, and how it carries its link. */
interface SamplePost {
  by: Account | { did: string; password: string }
  text: string
  /** Link facets for the URLs in the text, as Bluesky's clients make them (else plain text, as AC's mood mirror posts). */
  facets: boolean
  /** A link card to this URL. */
  card?: string
  image?: Buffer
}

/**
 * Posts about AC for `ac-appview dev`, after the writer's backfill, so that every feed has posts:
 * - shares made with `writer share`: a painting from its owner, a tape and a KidLisp program from
 *   AC's account;
 * - moods mirrored as AC mirrors them (`@handle: mood` and the `moods~handle~rkey` link, plain
 *   text, from AC's account);
 * - users' posts linking AC each way a post can: a link facet (`#code`), a link card (`$code`,
 *   sigil percent-encoded), a bare URL in the text (`!code`), a news link; and an image post
 *   without any link by an AC user (only the artists feed shows it).
 * @returns how many posts were made.
 */
export async function seedSamplePosts(opts: { cfg: Config; log: Logger; db: Db; acAccount: { did: string; password: string } }): Promise<number> {
  const { cfg, log, db } = opts
  requireConfig(cfg, 'PDS_URL')
  const users = [...(await loadAccounts(db, log)).values()].filter((a) => a.user !== cfg.AC_GUEST_USER)
  const live = { nuked: { $ne: true }, atproto: { $exists: true }, user: { $in: users.map((u) => u.user) } }
  const painting = await db.collection('paintings').findOne(live, { sort: { when: -1 } })
  const kidlisp = await db.collection('kidlisp').findOne(live, { sort: { when: -1 } })
  const tape = await db.collection('tapes').findOne({ ...live, mp4Status: 'complete' }, { sort: { when: -1 } })
  const moods = (
    await db
      .collection('moods')
      .find({ deleted: { $ne: true }, 'atproto.rkey': { $exists: true } })
      .sort({ when: -1 })
      .limit(30)
      .toArray()
  )
    .filter((m) => m.mood.length < 120)
    .slice(0, 3)
  if (!painting || !kidlisp || !tape || !moods.length || users.length < 4) throw new Error('the sample data lacks the items the sample posts link')

  const shares = [
    await runShare(cfg, log, `#${painting.code}`),
    await runShare(cfg, log, `!${tape.code}`, { as: 'account' }),
    await runShare(cfg, log, `$${kidlisp.code}`, { as: 'account' }),
  ]
  const site = cfg.AC_PUBLIC_URL.replace(/\/+$/, '')
  const posts: SamplePost[] = [
    ...(await Promise.all(
      moods.map(async (m) => {
        const handle = await acHandle(db, m)
        return { by: opts.acAccount, text: `@${handle}: ${m.mood}\n\n${site}/moods~${handle}~${m.atproto.rkey}`, facets: false }
      }),
    )),
    { by: users[0], text: `this painting 😍 ${site}/#${painting.code}`, facets: true },
    { by: users[1], text: 'made this in KidLisp', facets: true, card: `${site}/%24${kidlisp.code}` },
    { by: users[2], text: `watch ${new URL(site).host}/!${tape.code}`, facets: false },
    { by: users[3], text: 'AC news: https://news.aesthetic.computer/nabc', facets: true },
    {
      by: users[0],
      text: 'sketching offline today',
      facets: true,
      image: await sharp({ create: { width: 48, height: 48, channels: 3, background: '#ff3399' } })
        .png()
        .toBuffer(),
    },
  ]
  for (const post of posts) await createPost(cfg.PDS_URL, post)
  log.info({ shares: shares.map((s) => s.uri), posts: posts.length }, 'sample posts made')
  return shares.length + posts.length
}

/** The AC handle (`@handles`) of a document's owner, else its user id. */
async function acHandle(db: Db, doc: Document): Promise<string> {
  return (await db.collection<{ _id: string; handle?: string }>('@handles').findOne({ _id: doc.user }))?.handle ?? String(doc.user)
}

async function createPost(pdsUrl: string, post: SamplePost): Promise<void> {
  const agent = new AtpAgent({ service: pdsUrl })
  await agent.login({ identifier: post.by.did, password: post.by.password })
  const rt = new RichText({ text: post.text })
  if (post.facets) rt.detectFacetsWithoutResolution()
  const record: Record<string, unknown> = { $type: POST_COLLECTION, text: rt.text, facets: rt.facets, createdAt: new Date().toISOString() }
  if (post.card)
    record.embed = { $type: 'app.bsky.embed.external', external: { uri: post.card, title: 'Aesthetic Computer', description: 'A KidLisp program' } }
  if (post.image) {
    const { blob } = (await agent.com.atproto.repo.uploadBlob(post.image, { encoding: 'image/png' })).data
    record.embed = { $type: 'app.bsky.embed.images', images: [{ image: blob, alt: 'a sketch', aspectRatio: { width: 48, height: 48 } }] }
  }
  await agent.com.atproto.repo.createRecord({ repo: post.by.did, collection: POST_COLLECTION, record })
}

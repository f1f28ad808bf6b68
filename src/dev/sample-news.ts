import { AtpAgent } from '@atproto/api'
import { ObjectId, type Db, type Document } from 'mongodb'

/** A PDS account of the sample, as `users.atproto` keeps it. */
export interface NewsSampleAccount {
  /** `users._id`. */
  user: string
  did: string
  password: string
}

/** What {@link seedNewsAndPapers} made. */
export interface NewsSample {
  /** Documents in `news-posts`: live, dead, waiting for a toll, pulled from Bluesky. */
  news: { total: number; live: number; dead: number; pendingToll: number; fromBluesky: number; legacy: number }
  /** Paper records written to the author's repo, as AC's script does. */
  papers: number
  /** The DID papers were written to. */
  paperAuthor: string
}

/** AC's alphabet for news codes after the `n` (docs/data-model.md). */
const NEWS_ALPHABET = 'bcdfghjklmnpqrstvwxyzaeiou23456789'

/** A few of AC's real paper folders and titles (papers.aesthetic.computer). */
const PAPERS = [
  ['arxiv-ac', 'aesthetic-computer-26-arxiv', "Aesthetic Computer '26"],
  ['arxiv-kidlisp', 'kidlisp-26-arxiv', "KidLisp '26"],
  ['arxiv-pieces', 'pieces-not-programs-26-arxiv', 'Pieces Not Programs'],
  ['arxiv-notepat', 'notepat-26-arxiv', 'notepat.com'],
  ['arxiv-whistlegraph', 'whistlegraph-26-arxiv', 'Whistlegraph'],
] as const

/**
 * AC's sixth and seventh kinds for the sample: `news-posts` documents in AC's real shapes (code
 * `n…`, title, url and text (empty strings when none), user, when, updated, score,
 * commentCount, status `live` / `dead` / `pending-toll` with toll fields, posts pulled from
 * Bluesky with `user: null`, `external` and an `atproto` naming the Bluesky post, one AC already
 * wrote to the PDS with its `atproto {rkey, uri, did}`), and papers written straight to the
 * first account's repo the way AC's paper script does (server-assigned keys, `revisions` a count,
 * `ref` the paper's folder). `rand` is the sample's seeded generator.
 */
export async function seedNewsAndPapers(opts: {
  db: Db
  pdsUrl: string
  accounts: NewsSampleAccount[]
  count: number
  rand: () => number
}): Promise<NewsSample> {
  const { db, accounts, rand } = opts
  const pick = <T>(list: readonly T[]) => list[Math.floor(rand() * list.length)]
  const codes = new Set<string>()
  const code = () => {
    for (;;) {
      const c = `n${Array.from({ length: 3 }, () => pick([...NEWS_ALPHABET])).join('')}`
      if (codes.has(c)) continue
      codes.add(c)
      return c
    }
  }
  const docs: Document[] = []
  const summary: NewsSample['news'] = { total: 0, live: 0, dead: 0, pendingToll: 0, fromBluesky: 0, legacy: 0 }
  for (let i = 0; i < opts.count; i++) {
    const when = new Date(Date.UTC(2025, 9, 1) + Math.floor(rand() * 150 * 86_400_000))
    const fromBluesky = i % 10 === 9
    const status = i % 10 === 7 ? 'dead' : i % 10 === 8 ? 'pending-toll' : 'live'
    const doc: Document = {
      _id: new ObjectId(),
      code: code(),
      title: `${pick(['New piece', 'Painting jam', 'KidLisp tip', 'Release', 'Show and tell'])}: ${pick(['notepat', 'wipe', 'ink', 'tape', 'prompt'])} #${i}`,
      url: i % 3 === 0 ? '' : `https://${pick(['aesthetic.computer/notepat', 'example.com/article', 'kidlisp.com/learn'])}/${i}`,
      text: i % 4 === 0 ? '' : `Some words about it (${i}). `.repeat(1 + (i % 5)),
      user: fromBluesky ? null : pick(accounts).user,
      when,
      updated: when,
      score: Math.floor(rand() * 40),
      commentCount: Math.floor(rand() * 8),
      status,
      ...(status === 'pending-toll' ? { tollAmount: 1, tollPaid: false } : {}),
    }
    if (fromBluesky) {
      const rkey = `3l${i.toString(36).padStart(11, 'a')}`
      Object.assign(doc, {
        external: {
          source: 'bsky',
          did: 'did:plc:bskyposter000000000000',
          handle: 'someone.bsky.social',
          postUri: `at://did:plc:bskyposter000000000000/app.bsky.feed.post/${rkey}`,
          postCid: 'bafyreib2rxk3rh6kzwq',
          postedAt: when,
          fetchedAt: when,
        },
        atproto: { rkey, uri: `at://did:plc:bskyposter000000000000/app.bsky.feed.post/${rkey}`, did: 'did:plc:bskyposter000000000000' },
      })
      summary.fromBluesky++
    } else summary[status === 'live' ? 'live' : status === 'dead' ? 'dead' : 'pendingToll']++
    docs.push(doc)
  }
  await db.collection('news-posts').createIndex({ code: 1 }, { unique: true })
  if (docs.length) await db.collection('news-posts').insertMany(docs)
  summary.total = docs.length

  // One post AC's own news script already wrote (createRecord, server-assigned key, no acUrl).
  const legacy = docs.find((d) => d.status === 'live' && d.user)
  const agents = new Map<string, AtpAgent>()
  const agent = async (account: NewsSampleAccount) => {
    if (!agents.has(account.did)) {
      const a = new AtpAgent({ service: opts.pdsUrl })
      await a.login({ identifier: account.did, password: account.password })
      agents.set(account.did, a)
    }
    return agents.get(account.did)!
  }
  if (legacy) {
    const account = accounts.find((a) => a.user === legacy.user)!
    const record = {
      $type: 'computer.aesthetic.news',
      headline: legacy.title,
      ...(legacy.text ? { body: legacy.text } : {}),
      when: legacy.when.toISOString(),
      ref: legacy._id.toHexString(),
    }
    const res = await (
      await agent(account)
    ).com.atproto.repo.createRecord({ repo: account.did, collection: 'computer.aesthetic.news', record, validate: false })
    await db
      .collection('news-posts')
      .updateOne({ _id: legacy._id }, { $set: { atproto: { rkey: res.data.uri.split('/').pop(), uri: res.data.uri, did: account.did } } })
    summary.legacy = 1
  }

  const author = accounts[0]
  for (const [i, [folder, slug, title]] of PAPERS.entries()) {
    const record = {
      $type: 'computer.aesthetic.paper',
      title,
      slug,
      pdfUrl: `https://papers.aesthetic.computer/${slug}.pdf`,
      languages: ['en', 'da', 'es', 'zh'].slice(0, 1 + (i % 4)),
      revisions: 1 + (i % 3),
      when: new Date(Date.UTC(2026, 0, 5 + i * 3)).toISOString(),
      ref: folder,
    }
    await (await agent(author)).com.atproto.repo.createRecord({ repo: author.did, collection: 'computer.aesthetic.paper', record, validate: false })
  }
  return { news: summary, papers: PAPERS.length, paperAuthor: author.did }
}

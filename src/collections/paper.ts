import type { Collection } from './types.js'

/**
 * `computer.aesthetic.paper`: AC's papers (papers.aesthetic.computer). AC's own scripts write
 * them to their author's repo from a list kept outside MongoDB, so the writer has nothing to
 * mirror: they are only indexed and served.
 */
export const paper: Collection = {
  kind: 'paper',
  nsid: 'computer.aesthetic.paper',
  normalize: (record) => record,
  synthetic: {
    count: 25,
    record: (n, s) => ({
      ...s.base,
      title: `Paper ${n}`,
      slug: `paper-${n}-26-arxiv`,
      pdfUrl: `https://papers.aesthetic.computer/paper-${n}-26-arxiv.pdf`,
      languages: ['en', 'da', 'es', 'zh'].slice(0, 1 + (n % 4)),
      revisions: 1 + (n % 3),
    }),
  },
  view: (_did, r, ctx) => ({ title: r.title, slug: r.slug, pdfUrl: ctx.recordUrl('pdfUrl', r.pdfUrl), languages: r.languages, revisions: r.revisions }),
}

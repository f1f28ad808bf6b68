// ac-appview operator dashboard. Plain browser JS, no dependencies. Every value from the index
// is user data: it is only ever set as text (textContent, attributes), never as HTML.
'use strict'

const REFRESH_MS = 10_000
const GALLERY_SIZE = 24
const PREFIX = { painting: '#', kidlisp: '$', tape: '!' }

const $ = (id) => document.getElementById(id)

/** Builds an element: `props` are DOM properties (className, textContent, href, src…). */
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props)
  for (const child of children) if (child != null) node.append(child)
  return node
}

/** GET JSON; resolves to { ok, status, body } and never throws on HTTP errors. */
async function getJson(url) {
  const res = await fetch(url, { headers: { accept: 'application/json' } })
  let body = null
  try {
    body = await res.json()
  } catch {
    // not JSON (a proxy's error page): the status says what happened
  }
  return { ok: res.ok, status: res.status, body }
}

const xrpc = (nsid, params) => getJson(`/xrpc/${nsid}?${new URLSearchParams(params)}`)

function ago(seconds) {
  if (seconds == null) return 'never'
  if (seconds < 90) return `${seconds} s`
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`
  return `${Math.round(seconds / 3600)} h`
}

function pill(node, text, level) {
  node.textContent = text
  node.className = `pill ${level ?? ''}`
}

function definitions(pairs) {
  const dl = el('dl')
  for (const [k, v] of pairs) dl.append(el('dt', { textContent: k }), el('dd', {}, v instanceof Node ? v : document.createTextNode(String(v))))
  return dl
}

function table(headers, rows) {
  if (!rows.length) return el('p', { className: 'empty', textContent: 'none' })
  const head = el('tr', {}, ...headers.map((h) => el('th', { textContent: h })))
  return el(
    'table',
    {},
    el('thead', {}, head),
    el('tbody', {}, ...rows.map((cells) => el('tr', {}, ...cells.map((c) => el('td', {}, c instanceof Node ? c : String(c ?? '')))))),
  )
}

// ---- ingest: the ingest's own /xrpc/_health ----

async function renderIngest() {
  const { status, body } = await getJson('/xrpc/_health')
  const box = $('ingest')
  box.replaceChildren()
  if (!body || !Array.isArray(body.ingest)) {
    pill($('ingest-state'), `HTTP ${status}`, 'bad')
    return
  }
  pill($('ingest-state'), body.status, body.status === 'ok' ? 'ok' : 'bad')
  if (!body.ingest.length) box.append(el('p', { className: 'empty', textContent: 'the ingest has not written a cursor yet' }))
  for (const i of body.ingest) {
    box.append(
      definitions([
        ['firehose', el('span', { className: 'mono', textContent: i.service })],
        ['cursor', i.cursor],
        ['last event', i.lastEventTime ?? '—'],
        ['lag', ago(i.secondsBehind)],
        ['last write', `${ago(i.secondsSinceUpdate)} ago`],
      ]),
    )
  }
}

// ---- operator status: writer, counts, conflicts, quarantine ----

function renderWriter(writer, unreachable, parts) {
  const box = $('writer')
  box.replaceChildren()
  // Under `ac-appview start`: each part's state (a failed part is restarted with backoff).
  if (parts)
    box.append(
      table(
        ['part', 'state', 'restarts', 'since', 'last error'],
        parts.map((p) => [p.name, p.state, String(p.restarts), p.since, p.lastError ?? '']),
      ),
    )
  if (unreachable) {
    box.append(el('p', { className: 'empty', textContent: `writer not reachable: ${unreachable}` }))
    return
  }
  if (!writer) {
    box.append(el('p', { className: 'empty', textContent: 'writer has not run' }))
    return
  }
  const counts = Object.entries(writer.counts ?? {})
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ')
  box.append(
    definitions([
      ['mode', writer.mode],
      ['status', writer.status],
      ['started', writer.startedAt],
      ['finished', writer.finishedAt ?? '—'],
      ['counts', counts || '—'],
      ...(writer.backlog != null ? [['backlog', writer.backlog]] : []),
      ['problems', `${writer.problemItems ?? 0} items`],
    ]),
  )
  // Problems grouped by reason: one row per reason with its count and an example, not one row per item.
  const groups = (writer.problems ?? []).slice(0, 15)
  if (groups.length) {
    box.append(
      table(
        ['items', 'action', 'reason', 'e.g.'],
        groups.map((g) => [
          g.items.toLocaleString('en'),
          g.action,
          g.reason,
          el('span', { className: 'mono', textContent: g.examples[0] ? `${g.examples[0].kind} ${g.examples[0].id} (${g.examples[0].repo})` : '' }),
        ]),
      ),
    )
  }
}

function renderCounts(status) {
  const total = Object.values(status.counts).reduce((a, b) => a + b, 0)
  const rows = Object.entries(status.counts).map(([kind, n]) =>
    el('tr', {}, el('td', { textContent: kind }), el('td', { textContent: n.toLocaleString('en') })),
  )
  rows.push(el('tr', {}, el('th', { textContent: 'items' }), el('th', { textContent: total.toLocaleString('en') })))
  const a = status.actors
  rows.push(el('tr', {}, el('td', { textContent: 'actors (trusted / hidden)' }), el('td', { textContent: `${a.total} (${a.trusted} / ${a.hidden})` })))
  $('counts').replaceChildren(el('tbody', {}, ...rows))
}

function who(c) {
  return c.handle ? `@${c.handle}` : c.did
}

function renderConflicts(conflicts) {
  pill($('conflict-count'), String(conflicts.length), conflicts.length ? 'warn' : 'ok')
  const rows = []
  for (const c of conflicts) {
    for (const claimant of c.claimants) {
      const role = claimant.winner
        ? el('span', { className: 'winner', textContent: 'owns the code' })
        : el('span', { className: claimant.trusted ? '' : 'untrusted', textContent: claimant.trusted ? 'later trusted claim' : 'untrusted: never resolves' })
      rows.push([
        el('span', { className: 'mono', textContent: `${PREFIX[c.kind] ?? ''}${c.code}` }),
        role,
        who(claimant) + (claimant.status ? ` (${claimant.status})` : ''),
        claimant.when,
        el('span', { className: 'mono', textContent: claimant.uri }),
      ])
    }
  }
  $('conflicts').replaceChildren(table(['code', 'claim', 'author', 'when', 'record'], rows))
}

function renderQuarantine(q) {
  pill($('quarantine-count'), String(q.total), q.total ? 'warn' : 'ok')
  const rows = q.recent.map((r) => [el('span', { className: 'mono', textContent: r.uri }), r.reason, r.lastSeen])
  $('quarantine').replaceChildren(table(['record', 'reason', 'last seen'], rows))
}

async function renderStatus() {
  const { ok, body } = await getJson('/dashboard/api/status')
  if (!ok || !body) return
  renderWriter(body.writer, body.writerUnreachable, body.parts)
  renderCounts(body)
  renderConflicts(body.conflicts)
  renderQuarantine(body.quarantine)
}

// ---- items: gallery (getFeed) and lookup (resolveCode) ----

function itemCard(item) {
  const code = item.code ? `${PREFIX[item.kind] ?? ''}${item.code}` : (item.slug ?? '')
  const media = el('div', { className: 'media' })
  const text = item.mood ?? item.source ?? item.slug
  if (item.thumb) media.append(el('img', { src: item.thumb, alt: `${item.kind} ${code}`, loading: 'lazy' }))
  else if (text) media.append(el('div', { className: 'text', textContent: text.slice(0, 400) }))
  const title = item.acUrl ? el('a', { href: item.acUrl, textContent: code, target: '_blank', rel: 'noopener' }) : el('span', { textContent: code })
  const meta = el(
    'div',
    { className: 'meta' },
    el('span', { className: 'kind', textContent: item.kind }),
    title,
    el('span', { className: 'dim', textContent: item.author.handle ? `@${item.author.handle}` : item.author.did }),
    el('span', { className: 'dim', textContent: item.when.slice(0, 16).replace('T', ' ') }),
  )
  const card = el('div', { className: 'item' }, media, meta)
  card.dataset.uri = item.uri
  return card
}

async function renderGallery() {
  const kind = $('gallery-kind').value
  const { ok, body } = await xrpc('computer.aesthetic.media.getFeed', { limit: GALLERY_SIZE, ...(kind ? { kind } : {}) })
  const box = $('gallery')
  if (!ok) return box.replaceChildren(el('p', { className: 'error', textContent: body?.message ?? 'feed unavailable' }))
  const shown = body.items.map((i) => `${i.uri} ${i.cid}`).join(' ')
  if (box.dataset.shown === shown && box.childElementCount) return // unchanged: keep the loaded images
  box.dataset.shown = shown
  box.replaceChildren(...(body.items.length ? body.items.map(itemCard) : [el('p', { className: 'empty', textContent: 'no items yet' })]))
}

let lookupSeq = 0
async function lookup() {
  const code = $('code').value.trim()
  const out = $('lookup-result')
  if (!code) return out.replaceChildren()
  const seq = ++lookupSeq
  const { ok, body } = await xrpc('computer.aesthetic.media.resolveCode', { code })
  if (seq !== lookupSeq) return // a newer lookup is under way
  if (ok) out.replaceChildren(itemCard(body.item))
  else out.replaceChildren(el('p', { className: 'error', textContent: `${body?.error ?? 'Error'}: ${body?.message ?? ''}` }))
}

let typing
$('code').addEventListener('input', () => {
  clearTimeout(typing)
  typing = setTimeout(lookup, 250)
})
$('lookup-form').addEventListener('submit', (e) => {
  e.preventDefault()
  clearTimeout(typing)
  void lookup()
})
$('gallery-kind').addEventListener('change', () => void renderGallery())

async function refresh() {
  await Promise.allSettled([renderIngest(), renderStatus(), renderGallery()])
  $('refreshed').textContent = `updated ${new Date().toLocaleTimeString()}`
  document.body.dataset.loaded = 'true'
}

void refresh()
setInterval(refresh, REFRESH_MS)

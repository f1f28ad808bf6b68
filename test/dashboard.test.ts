import fs from 'node:fs/promises'
import path from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OPERATOR_PASSWORD, indexed, publish, startAppViewStack, waitFor, type AppViewStack } from './support/appview.js'

/** The browser logs a failed fetch for the lookup of an unknown code (the 400 NotFound answer): expected. */
const EXPECTED_ERRORS = /status of 400 \(Bad Request\)/

const ARTIFACTS = path.join(import.meta.dirname, 'artifacts')

/** A 16×16 pixel-art PNG (stripes and a diagonal in two colours), shaped like AC's paintings. */
async function pixelArt(seed: number): Promise<Buffer> {
  const size = 16
  const pixels = Buffer.alloc(size * size * 3)
  const hue = (n: number) => [(n * 97) % 256, (n * 57 + 80) % 256, (n * 31 + 160) % 256]
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const c = (x + seed) % 4 < 2 || x === y ? hue(seed) : hue(seed + 3)
      pixels.set(c, (y * size + x) * 3)
    }
  }
  return sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .resize(512, 512, { kernel: 'nearest' })
    .png()
    .toBuffer()
}

/**
 * Issue 6: the operator dashboard end to end in headless Chromium (Debian's `chromium`, driven by
 * playwright-core) against a real PDS, ingest and AppView: the page loads, the gallery's
 * thumbnails render, a code typed in the lookup box shows its item, conflicts and quarantine
 * are listed. Leaves a screenshot in test/artifacts/dashboard.png.
 */
describe('operator dashboard', () => {
  let s: AppViewStack
  let browser: Browser
  const uris: string[] = []
  let lookupUri: string
  let badUri: string

  beforeAll(async () => {
    s = await startAppViewStack()
    const [alice, bob] = await Promise.all([s.account('alice'), s.account('bob')])
    for (let i = 0; i < 8; i++) {
      uris.push(
        (
          await publish(i % 3 ? alice : bob, {
            kind: 'painting',
            code: `Dp${i}`,
            when: new Date(Date.UTC(2025, 5, 1 + i)).toISOString(),
            thumbnail: await pixelArt(i),
          })
        ).uri,
      )
    }
    lookupUri = uris[2]
    uris.push((await publish(alice, { kind: 'mood', mood: 'painting all day', when: '2025-06-20T12:00:00.000Z' })).uri)
    uris.push(
      (await publish(bob, { kind: 'kidlisp', code: 'k1d', source: '(wipe purple)\n(ink yellow)\n(box 8 8 32 32)', when: '2025-06-21T12:00:00.000Z' })).uri,
    )
    // bob claims alice's #Dp2 later: a conflict the dashboard must show, alice owning the code.
    uris.push((await publish(bob, { kind: 'painting', code: 'Dp2', when: '2025-07-01T00:00:00.000Z', thumbnail: await pixelArt(9) })).uri)
    // A record that fails its lexicon (code too long): quarantined, listed for operators.
    const bad = await alice.agent.com.atproto.repo.createRecord({
      repo: alice.did,
      collection: 'computer.aesthetic.kidlisp',
      record: { $type: 'computer.aesthetic.kidlisp', source: '(wipe)', code: 'much-too-long-code', when: '2025-06-22T00:00:00.000Z', ref: 'x' },
      validate: false,
    })
    badUri = bad.data.uri
    await waitFor('every record indexed', async () => (await Promise.all(uris.map((u) => indexed(s.index, u)))).every(Boolean), 90_000)
    await waitFor(
      'the quarantine row',
      async () => !!(await s.index.selectFrom('quarantine').select('uri').where('uri', '=', bad.data.uri).executeTakeFirst()),
      30_000,
    )
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
  })

  afterAll(async () => {
    await browser?.close()
    await s?.close()
  })

  it('shows status, thumbnails, conflicts and quarantine, and resolves a typed code', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1500 }, httpCredentials: { username: 'operator', password: OPERATOR_PASSWORD } })
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
    await page.goto(s.url, { waitUntil: 'load' })
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 30_000 })

    await expect.poll(() => page.locator('#ingest-state').textContent(), { timeout: 30_000 }).toBe('ok')
    expect(await page.locator('#writer').textContent()).toContain('writer not reachable: the writer runs elsewhere')
    expect(await page.locator('#counts').textContent()).toMatch(/painting\s*9/)
    expect(await page.locator('#conflict-count').textContent()).toBe('1')
    expect(await page.locator('#conflicts').textContent()).toMatch(/#Dp2\s*owns the code/)
    expect(await page.locator('#quarantine-count').textContent()).toBe('1')
    expect(await page.locator('#quarantine').textContent()).toContain(badUri)

    const thumbs = page.locator('#gallery img')
    await expect.poll(() => thumbs.count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(8)
    // The page's CSP forbids eval: read the images through locators (Playwright's own world).
    const widths = () =>
      thumbs.evaluateAll((imgs) =>
        imgs.map(
          (img) => (img as unknown as { complete: boolean; naturalWidth: number }).complete && (img as unknown as { naturalWidth: number }).naturalWidth,
        ),
      )
    await expect.poll(async () => (await widths()).every((w) => typeof w === 'number' && w > 0), { timeout: 30_000 }).toBe(true)
    expect(await widths()).toEqual(Array((await widths()).length).fill(512))
    expect(await page.locator('#gallery').textContent()).toContain('painting all day')

    await page.locator('#code').fill('#Dp2')
    const card = page.locator(`#lookup-result .item[data-uri="${lookupUri}"]`)
    await card.waitFor({ timeout: 15_000 })
    await expect.poll(() => card.locator('img').evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth), { timeout: 15_000 }).toBe(512)
    expect(await card.textContent()).toContain('#Dp2')

    await page.locator('#code').fill('#nope9')
    await expect.poll(() => page.locator('#lookup-result').textContent(), { timeout: 15_000 }).toMatch(/NotFound/)
    await page.locator('#code').fill('$k1d')
    await page.locator(`#lookup-result .item`).filter({ hasText: '$k1d' }).waitFor({ timeout: 15_000 })
    await page.locator('#code').fill('#Dp2')
    await card.waitFor({ timeout: 15_000 })

    await fs.mkdir(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true })
    expect(errors.filter((e) => !EXPECTED_ERRORS.test(e))).toEqual([])
  })
})

import { describe, expect, it } from 'vitest'
import { acLinks } from '../src/feeds/links.js'

/** AC's URL forms (docs/data-model.md) as the post filter reads them. */
describe('AC links', () => {
  const links = acLinks('https://aesthetic.computer')

  it.each([
    ['https://aesthetic.computer/#abc', { kind: 'painting', via: 'code', key: 'abc' }],
    ['https://aesthetic.computer/%23WDv', { kind: 'painting', via: 'code', key: 'WDv' }],
    ['https://aesthetic.computer#9Yo', { kind: 'painting', via: 'code', key: '9Yo' }],
    ['https://aesthetic.computer/$cow', { kind: 'kidlisp', via: 'code', key: 'cow' }],
    ['https://aesthetic.computer/%24cow?from=bsky', { kind: 'kidlisp', via: 'code', key: 'cow' }],
    ['https://aesthetic.computer/!tp1', { kind: 'tape', via: 'code', key: 'tp1' }],
    ['https://aesthetic.computer/%21tp1/', { kind: 'tape', via: 'code', key: 'tp1' }],
    ['http://WWW.Aesthetic.Computer/$cow', { kind: 'kidlisp', via: 'code', key: 'cow' }],
    ['https://aesthetic.computer/painting~@jeffrey/2023.8.24.16.21.09.123', { kind: 'painting', via: 'slug', key: '2023.8.24.16.21.09.123' }],
    [
      'https://aesthetic.computer/painting~%40jeffrey/2023.8.24.16.21.09.123:2023.8.24.16.22.00.000',
      { kind: 'painting', via: 'slug', key: '2023.8.24.16.21.09.123' },
    ],
    ['https://aesthetic.computer/moods~jeffrey~3kzyabc2def2x', { kind: 'mood', via: 'rkey', key: '3kzyabc2def2x' }],
    ['https://aesthetic.computer/media/paintings/Xyz.png', { kind: 'painting', via: 'code', key: 'Xyz' }],
    ['https://news.aesthetic.computer/nabc', { kind: 'news', via: 'code', key: 'nabc' }],
    ['https://news.aesthetic.computer/', { kind: 'site' }],
    ['https://papers.aesthetic.computer/aesthetic-computer-26-arxiv.pdf', { kind: 'site' }],
    ['https://aesthetic.computer/wand', { kind: 'site' }],
    ['https://aesthetic.computer/', { kind: 'site' }],
    ['https://aesthetic.computer/#toolongcode11', { kind: 'site' }],
    ['https://aesthetic.computer/moods~jeffrey~..', { kind: 'site' }],
    ['https://aesthetic.computer/%E0%A4%A', { kind: 'site' }],
  ])('%s', (url, target) => {
    expect(links.target(url)).toEqual(target)
  })

  it.each([
    'https://aesthetic.computer.evil.example/#abc',
    'https://notaesthetic.computer/#abc',
    'ftp://aesthetic.computer/#abc',
    'not a url',
    'https://example.com/aesthetic.computer/#abc',
  ])('is not AC: %s', (url) => {
    expect(links.target(url)).toBeNull()
  })

  it("finds AC's host in raw bytes whatever its case, and nothing else", () => {
    const bytes = (s: string) => new Uint8Array(Buffer.concat([Buffer.from([0xa2, 0x64, 0x74, 0x65]), Buffer.from(s), Buffer.from([0xff, 0x00])]))
    expect(links.mentioned(bytes('see https://aesthetic.computer/#abc'))).toBe(true)
    expect(links.mentioned(bytes('AESTHETIC.COMPUTER rocks'))).toBe(true)
    expect(links.mentioned(bytes('news.Aesthetic.Computer/nabc'))).toBe(true)
    expect(links.mentioned(bytes('computer.aesthetic.painting/3kabc'))).toBe(false)
    expect(links.mentioned(bytes('an aesthetic computer'))).toBe(false)
    const whole = bytes('aesthetic.computer xx')
    expect(links.mentioned(whole.subarray(5))).toBe(false) // a view is read from its own offset
    expect(links.mentioned(whole.subarray(4, 21))).toBe(false) // and to its own end
    expect(links.mentioned(whole.subarray(4, 22))).toBe(true)
  })

  it('follows AC_PUBLIC_URL', () => {
    const local = acLinks('http://localhost:8888')
    expect(local.target('http://localhost:8888/$cow')).toEqual({ kind: 'kidlisp', via: 'code', key: 'cow' })
    expect(local.target('https://aesthetic.computer/$cow')).toBeNull()
  })
})

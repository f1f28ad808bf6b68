#!/usr/bin/env node
// Runs the compiled CLI when `npm run build` has produced it, else the TypeScript source via tsx.
import { existsSync } from 'node:fs'

const built = new URL('../dist/src/cli.js', import.meta.url)
if (existsSync(built)) {
  await import(built.href)
} else {
  const { register } = await import('tsx/esm/api')
  register()
  await import(new URL('../src/cli.ts', import.meta.url).href)
}

// Entry of a verify pool worker when the ingest runs from its TypeScript source (tsx, vitest): a
// worker thread starts without the parent's module loader, so this registers tsx and then loads
// the worker's task (as src/writer/media-worker-source.mjs does). The compiled build loads
// verify-worker.js directly.
import { register } from 'tsx/esm/api'

register()
const { commit } = await import('./verify-worker.ts')
export { commit }

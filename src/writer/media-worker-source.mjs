// Entry of a media pool worker when the writer runs from its TypeScript source (tsx, vitest): a
// worker thread starts without the parent's module loader, so this registers tsx and then loads
// the worker's tasks. The compiled build loads media-worker.js directly.
import { register } from 'tsx/esm/api'

register()
const { thumbnail, tape } = await import('./media-worker.ts')
export { thumbnail, tape }

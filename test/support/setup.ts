import { afterAll } from 'vitest'
import { killChildren } from './children.js'

// Every test file: no process it spawned outlives it, whether it passed, failed or timed out.
afterAll(killChildren)

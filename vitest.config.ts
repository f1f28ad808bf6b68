import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/support/setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Each file starts its own PDS, PLC and MongoDB; two at a time suit a 2-core machine.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
  },
})

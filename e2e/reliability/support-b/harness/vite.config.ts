// The reliability harness page: the SDK from source, bundled like the demo (ES workers,
// relative URLs), without React or a service worker, so a spec drives the client directly.
import { defineConfig } from 'vite'
import { sourceResolution } from '../../../../scripts/source-conditions.ts'

export default defineConfig({
  ...sourceResolution,
  base: './',
  worker: { format: 'es' },
  build: { target: 'es2022', sourcemap: false, rolldownOptions: { checks: { bundlerTimings: false } } },
  logLevel: 'warn',
})

import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import react from '@vitejs/plugin-react'
import { sourceResolution } from '../scripts/source-conditions.ts'

const swTemplate = fileURLToPath(new URL('./sw/sw.js', import.meta.url))
const publicDir = fileURLToPath(new URL('./public', import.meta.url))

/** Files copied verbatim from `public/` (the favicon), which the bundle does not list. */
function publicFiles(): string[] {
  return existsSync(publicDir) ? readdirSync(publicDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => `${e.parentPath.slice(publicDir.length + 1)}/${e.name}`.replace(/^\//, '')) : []
}

/**
 * Emits `sw.js` with the exact list of files this build produced, so the service worker
 * can precache the whole app shell (the page, its chunks and the engine's worker script)
 * on install. Its version is a hash of that list: a new deploy is a new service worker,
 * which drops the old deploy's cache once it activates.
 */
function serviceWorker(): Plugin {
  return {
    name: 'outpost-demo-service-worker',
    apply: 'build',
    generateBundle(_options, bundle) {
      const files = [...Object.keys(bundle), ...publicFiles()]
        .filter((file) => !file.endsWith('.map') && file !== 'sw.js')
        .sort()
      const precache = ['./', ...files.map((file) => `./${file}`)]
      const version = createHash('sha256').update(JSON.stringify(precache)).update(readFileSync(swTemplate)).digest('hex').slice(0, 12)
      const source = readFileSync(swTemplate, 'utf8')
        .replace('__PRECACHE__', JSON.stringify(precache))
        .replace('__VERSION__', JSON.stringify(version))
      this.emitFile({ type: 'asset', fileName: 'sw.js', source })
    },
  }
}

export default defineConfig({
  plugins: [react(), serviceWorker()],
  // The demo builds the SDK from its TypeScript source (no package build needed first).
  ...sourceResolution,
  // Relative asset URLs: the built app also works when served from a sub-path.
  base: './',
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    sourcemap: true,
    // The worker bundles are slow to transform by nature; a timing warning on every build is noise.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', port: 5173 },
})

import { defineConfig } from 'tsdown'
import { packageBuild } from '../../scripts/tsdown-package'

// The two worker entries are loaded by URL (`new URL('../worker-entry.js', import.meta.url)`), not imported.
export default defineConfig(packageBuild({ entry: ['src/index.ts', 'src/react/index.ts', 'src/devtools/index.ts', 'src/worker-entry.ts', 'src/dedicated-worker-entry.ts'], platform: 'browser' }))

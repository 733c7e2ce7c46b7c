import { defineConfig } from 'tsdown'
import { packageBuild } from '../../scripts/tsdown-package'

export default defineConfig(packageBuild({ entry: ['src/index.ts', 'src/shared-worker.ts', 'src/dedicated-worker.ts', 'src/engine-methods.ts'], platform: 'browser' }))

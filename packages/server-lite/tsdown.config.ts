import { defineConfig } from 'tsdown'
import { packageBuild } from '../../scripts/tsdown-package'

export default defineConfig(packageBuild({ entry: ['src/index.ts', 'src/cli.ts'], platform: 'node' }))

#!/usr/bin/env node
// `outpost-server`: runs the built relay (plain Node, no TypeScript loader). In the Outpost
// repository the relay runs from source instead (`npm start`, the tests); `npm run build`
// makes dist/ when you want this file to work there too.
import { existsSync } from 'node:fs'

const cli = new URL('../dist/cli.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write(`outpost-server: ${cli.pathname} is missing; this copy of @outpost/server-lite was not built (run \`npm run build\` in the repository)\n`)
  process.exit(1)
}
await import(cli.href)

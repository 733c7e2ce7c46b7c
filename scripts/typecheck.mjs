// Type-checks every package with its own tsconfig (each keeps its package in its room:
// core sees neither DOM nor Node types). Runs the projects one after another and
// reports every failure, not just the first.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const roots = ['packages/core', 'packages/worker', 'packages/client', 'packages/server-lite', 'demo-app', 'e2e', 'bench', 'scripts']
const projects = []
for (const root of roots) {
  if (!existsSync(root)) continue
  for (const file of readdirSync(root)) {
    if (/^tsconfig(\.[a-z-]+)?\.json$/.test(file)) projects.push(join(root, file))
  }
}

const tsc = join('node_modules', 'typescript', 'bin', 'tsc')
let failed = 0
for (const project of projects) {
  const started = Date.now()
  const result = spawnSync(process.execPath, [tsc, '-p', project, '--noEmit'], { stdio: 'inherit' })
  const ms = Date.now() - started
  if (result.status !== 0) {
    failed++
    console.error(`typecheck FAILED: ${project} (${ms} ms)`)
  } else {
    console.log(`typecheck ok: ${project} (${ms} ms)`)
  }
}
if (failed > 0) {
  console.error(`${failed} of ${projects.length} projects failed to type-check`)
  process.exit(1)
}

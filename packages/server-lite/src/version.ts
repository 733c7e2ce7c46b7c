/** The relay's version, read from its own package.json (`src/` and `dist/` both sit one level below it). */
import { readFileSync } from 'node:fs'

let cached: string | undefined

/** The version of `@outpost/server-lite` that is running (`outpost-server --version`). */
export function relayVersion(): string {
  cached ??= (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
  return cached
}

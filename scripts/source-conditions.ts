/**
 * Developing Outpost from source: every package's `exports` has an `@outpost/source`
 * condition that points at its `src/*.ts` (consumers never enable it and get `dist/`).
 * Inside this repository, TypeScript (`customConditions` in tsconfig.base.json), Vite and
 * Vitest (this config fragment) and Node child processes (`node --conditions=@outpost/source
 * --import tsx`) enable it, so nothing needs a build before it runs or is tested.
 */
import { defaultClientConditions, defaultServerConditions, type UserConfig } from 'vite'

/** The export condition that selects a package's TypeScript source. */
export const SOURCE_CONDITION = '@outpost/source'

/** Node flags that run a workspace package's TypeScript source (the relay in tests, `npm start`, benchmarks). */
export const NODE_SOURCE_FLAGS: readonly string[] = [`--conditions=${SOURCE_CONDITION}`, '--import', 'tsx']

/** Vite/Vitest resolution that prefers the source condition in the browser, in workers and in Node. */
export const sourceResolution: Pick<UserConfig, 'resolve' | 'ssr'> = {
  resolve: { conditions: [SOURCE_CONDITION, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, ...defaultServerConditions] } },
}

/**
 * The one build recipe every published package uses (each package's tsdown.config.ts
 * names only its entries and platform): ESM JavaScript that mirrors `src/` file for file
 * (so relative `new URL('./x.js', import.meta.url)` worker URLs stay valid), `.d.ts`
 * declarations, and source maps for both that point into the shipped `src/`.
 * Dependencies are never bundled: the app's bundler (or Node) resolves them once.
 */
import type { UserConfig } from 'tsdown'

/** What a package's config says about itself. */
export interface PackageBuild {
  /** Entry files (every public subpath export and worker entry). */
  readonly entry: readonly string[]
  /** Where the code runs: `neutral` (core), `browser` (worker, client) or `node` (relay). */
  readonly platform: 'neutral' | 'browser' | 'node'
}

/** The tsdown config of one package. */
export function packageBuild({ entry, platform }: PackageBuild): UserConfig {
  return {
    entry: [...entry],
    platform,
    format: 'esm',
    target: 'es2022',
    unbundle: true,
    fixedExtension: false,
    sourcemap: true,
    // The maps point into the shipped src/, so they need not carry a second copy of it.
    outputOptions: { sourcemapExcludeSources: true },
    dts: { sourcemap: true },
    tsconfig: 'tsconfig.json',
    // Nothing from node_modules is bundled: a package that imports an undeclared dependency fails the build.
    deps: { onlyBundle: [] },
    // The declaration pass dominates build time by nature; a timing warning on every build is noise.
    checks: { pluginTimings: false },
    clean: true,
    report: false,
    logLevel: 'warn',
  }
}

/**
 * Seeds for the Playwright scenarios (D2, B1): core's seeded PRNG and seed reader. Playwright
 * resolves `@outpost/core` to its built `dist/`, which tests never need, so this imports
 * the dependency-free source module itself; the vitest scenarios use `@outpost/core/testing`.
 */
export { prng, testSeed } from '../../../packages/core/src/testing/random'

/** An integer in [min, max] drawn from `random`. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

/** Seeds for randomized relay tests: one printed per run, replayed with `OUTPOST_SEED`. */

export { prng, testSeed } from '@outpost/core/testing'

/** An integer in [min, max] drawn from `random`. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

/** One element of `items` drawn from `random`. */
export function pick<T>(random: () => number, items: readonly T[]): T {
  if (items.length === 0) throw new RangeError('pick from an empty list')
  return items[Math.floor(random() * items.length)] as T
}

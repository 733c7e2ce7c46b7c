/** Seeds for randomized relay tests: one printed per run, replayed with `OUTPOST_SEED`. */

/** The run's seed: `OUTPOST_SEED` when set (a replay), otherwise a fresh one. */
export function testSeed(): number {
  const fromEnv = process.env.OUTPOST_SEED
  if (fromEnv !== undefined && fromEnv !== '') {
    const seed = Number(fromEnv)
    if (!Number.isSafeInteger(seed)) throw new TypeError(`OUTPOST_SEED must be an integer, got ${fromEnv}`)
    return seed >>> 0
  }
  return (Math.random() * 2 ** 32) >>> 0
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** An integer in [min, max] drawn from `random`. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

/** One element of `items` drawn from `random`. */
export function pick<T>(random: () => number, items: readonly T[]): T {
  if (items.length === 0) throw new RangeError('pick from an empty list')
  return items[Math.floor(random() * items.length)] as T
}

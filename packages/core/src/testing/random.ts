/**
 * Seeded randomness for tests: every randomized test draws from {@link prng} and prints
 * the seed it got from {@link testSeed}, so a failure replays with `OUTPOST_SEED=<seed>`.
 */

/** mulberry32: a tiny, fast seeded PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The environment variable a test reads, where there is one (Node; absent in a browser). */
function env(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name]
}

/**
 * The seed of a randomized test: `OUTPOST_SEED` when set (a replay), otherwise a fresh
 * 32-bit one. With a `name`, the seed is printed with the line that replays it.
 */
export function testSeed(name?: string): number {
  const fromEnv = env('OUTPOST_SEED')
  let seed: number
  if (fromEnv !== undefined && fromEnv !== '') {
    seed = Number(fromEnv)
    if (!Number.isSafeInteger(seed)) throw new TypeError(`OUTPOST_SEED must be an integer, got ${fromEnv}`)
    seed = seed >>> 0
  } else {
    seed = (Math.random() * 2 ** 32) >>> 0
  }
  // Core has no DOM or Node types; tests run where a console exists.
  const out = (globalThis as { console?: { log(message: string): void } }).console
  if (name !== undefined) out?.log(`[${name}] seed=${seed} (replay with OUTPOST_SEED=${seed})`)
  return seed
}

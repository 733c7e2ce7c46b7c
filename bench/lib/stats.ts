/**
 * Summaries of repeated measurements. Every figure the harness prints is a median of at
 * least five runs after a warm-up, with the min and max beside it.
 */

/** A summarized series of samples. */
export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: number
}

/** The `q` quantile (0..1) of `values` by nearest rank; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] as number
}

/** Median, min and max of `values`. */
export function summarize(values: readonly number[]): Summary {
  return {
    median: quantile(values, 0.5),
    min: values.length === 0 ? Number.NaN : Math.min(...values),
    max: values.length === 0 ? Number.NaN : Math.max(...values),
    runs: values.length,
  }
}

/** How many repetitions a run uses. */
export interface Repeats {
  readonly warmup: number
  readonly runs: number
}

/**
 * Runs each system's measurement `runs` times after `warmup` unrecorded rounds, alternating
 * the systems within every round (A B C, A B C, ...) so drift in the machine hits all alike.
 * A system whose measurement throws is recorded as failed and skipped from then on.
 */
export async function alternate<K extends string>(
  systems: readonly K[],
  repeats: Repeats,
  measure: (system: K, round: number) => Promise<number>,
): Promise<Map<K, { samples: number[]; error?: string }>> {
  const out = new Map<K, { samples: number[]; error?: string }>()
  for (const system of systems) out.set(system, { samples: [] })
  for (let round = 0; round < repeats.warmup + repeats.runs; round++) {
    for (const system of systems) {
      const entry = out.get(system)
      if (!entry || entry.error !== undefined) continue
      try {
        const value = await measure(system, round)
        if (round >= repeats.warmup) entry.samples.push(value)
      } catch (error) {
        entry.error = error instanceof Error ? error.message.split('\n')[0] : String(error)
      }
    }
  }
  return out
}

/** Rejects with a clear message when `promise` takes longer than `ms` (a stuck system must not stall the run). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${Math.round(ms / 1000)} s`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

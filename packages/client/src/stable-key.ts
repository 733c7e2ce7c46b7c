/**
 * A deterministic string for a query or shape, so equal queries written as different
 * object literals (a React component re-rendering) share one live subscription.
 */

/** Serializes `value` with sorted object keys; Dates, bigints and bytes get tagged forms. */
export function stableKey(value: unknown): string {
  return JSON.stringify(normalize(value))
}

function normalize(value: unknown): unknown {
  if (typeof value === 'bigint') return { $bigint: value.toString() }
  if (value instanceof Date) return { $date: value.getTime() }
  if (value instanceof Uint8Array) return { $bytes: Array.from(value) }
  if (Array.isArray(value)) return value.map(normalize)
  if (typeof value === 'object' && value !== null) {
    const out: [string, unknown][] = []
    for (const key of Object.keys(value).sort()) out.push([key, normalize((value as Record<string, unknown>)[key])])
    return { $object: out }
  }
  return value
}

/**
 * Memory readings for the reliability scenarios: the test process's heap after a forced
 * garbage collection (an in-process relay), and a child process's resident set from
 * `/proc/<pid>/status` (a relay run as its own process).
 */
import { readFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

let collect: (() => void) | undefined

/**
 * Runs a full garbage collection. Vitest does not start its workers with `--expose-gc`,
 * so the flag is switched on at run time and `gc` taken from a fresh context, where V8
 * installs it once the flag is set.
 */
export function forceGc(): void {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc
    if (typeof exposed === 'function') collect = exposed
    else {
      setFlagsFromString('--expose-gc')
      collect = runInNewContext('gc') as () => void
    }
  }
  // Twice: the first pass runs finalizers that free more on the second.
  collect()
  collect()
}

/** `process.memoryUsage().heapUsed` after {@link forceGc}, after letting pending callbacks run. */
export async function settledHeapUsed(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 50))
  forceGc()
  return process.memoryUsage().heapUsed
}

/** Resident memory of a process (kB fields of /proc/<pid>/status, in bytes): now and the peak so far. */
export interface ProcessMemory {
  /** VmRSS. */
  readonly rss: number
  /** VmHWM: the highest resident set the process has had. */
  readonly peakRss: number
}

/** Reads {@link ProcessMemory} of `pid` (Linux). */
export function processMemory(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    if (match === null) throw new Error(`/proc/${pid}/status has no ${name}`)
    return Number(match[1]) * 1024
  }
  return { rss: field('VmRSS'), peakRss: field('VmHWM') }
}

/** Bytes as MiB with one decimal, for figures. */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`
}

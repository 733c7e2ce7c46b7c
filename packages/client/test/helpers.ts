/**
 * Test helpers: isolated fake-indexeddb factories and a way to wait for a live value to
 * satisfy a condition (bounded, so a broken subscription fails instead of hanging).
 */
// idb uses the IDB* globals (IDBRequest, IDBKeyRange...); each test still gets its own factory.
import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import type { Live } from '../src/index'

let counter = 0

/** A fresh, isolated IndexedDB and a unique database name. */
export function freshDb(prefix = 'test'): { indexedDB: IDBFactory; name: string } {
  counter++
  return { indexedDB: new IDBFactory(), name: `${prefix}-${counter}-${process.pid}` }
}

/** Resolves with the first value of `live` that satisfies `accept`; rejects after `timeoutMs`. */
export function waitFor<V>(live: Live<V>, accept: (value: V) => boolean, timeoutMs = 5000): Promise<V> {
  return new Promise<V>((resolve, reject) => {
    let last: { value: V } | undefined
    let unsubscribe: (() => void) | undefined
    const timer = setTimeout(() => {
      unsubscribe?.()
      reject(new Error(`waitFor timed out after ${timeoutMs} ms; last value: ${JSON.stringify(last?.value, bigintSafe)}`))
    }, timeoutMs)
    let done = false
    unsubscribe = live.subscribe(
      (value) => {
        last = { value }
        if (done || !accept(value)) return
        done = true
        clearTimeout(timer)
        queueMicrotask(() => unsubscribe?.())
        resolve(value)
      },
      (error) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}

/** Waits until `check` returns true, polling; rejects after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

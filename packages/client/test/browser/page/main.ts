/**
 * The page the Chromium tests drive: it imports the SDK the way an app does
 * (`@outpost/client`, bundled by Vite) and exposes a small harness on `window.harness`.
 */
import { createClient, type ClientStatus, type OutpostClient, type Row } from '@outpost/client'

interface Item {
  title: string
  /** `performance.timeOrigin + performance.now()` when written, for latency figures. */
  at?: number
}

let client: OutpostClient | undefined
/** One map per database name, so scenarios sharing the relay do not see each other's rows. */
let mapName = 'items'
let rows: readonly Row<Item>[] = []
const waiters = new Set<() => void>()

function items() {
  if (!client) throw new Error('start() first')
  return client.map<Item>(mapName)
}

function wallNow(): number {
  return performance.timeOrigin + performance.now()
}

const harness = {
  async start(options: { name: string; url?: string }): Promise<string> {
    mapName = `items-${options.name}`
    client = createClient({ name: options.name, ...(options.url === undefined ? {} : { url: options.url }) })
    if (options.url !== undefined) client.sync(mapName)
    items()
      .query({ orderBy: [['title', 'asc']] })
      .subscribe((next) => {
        rows = next
        for (const waiter of [...waiters]) waiter()
      })
    await client.ready()
    return client.mode
  },
  async set(key: string, title: string): Promise<void> {
    await items().set(key, { title, at: wallNow() })
  },
  async setPersisted(key: string, title: string): Promise<string> {
    const handle = items().set(key, { title, at: wallNow() })
    await handle.persisted
    return handle.concern
  },
  titles(): string[] {
    return rows.map((row) => row.value.title)
  },
  /** Resolves when the live query shows `title`; returns how long that took. */
  waitForTitle(title: string, timeoutMs = 10_000): Promise<number> {
    const started = performance.now()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!rows.some((row) => row.value.title === title)) return
        waiters.delete(check)
        clearTimeout(timer)
        resolve(performance.now() - started)
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`"${title}" did not appear within ${timeoutMs} ms; rows: ${JSON.stringify(rows.map((r) => r.value.title))}`))
      }, timeoutMs)
      waiters.add(check)
      check()
    })
  },
  /** Wall-clock delay between the write of `title` (in any tab) and its arrival in this tab's live query. */
  async arrivalDelay(title: string, timeoutMs = 10_000): Promise<number> {
    await harness.waitForTitle(title, timeoutMs)
    const row = rows.find((r) => r.value.title === title)
    return wallNow() - (row?.value.at ?? Number.NaN)
  },
  /** Same-tab write → live-query callback latency over `n` writes (ms each). */
  async measureSameTab(n: number): Promise<number[]> {
    const samples: number[] = []
    for (let i = 0; i < n; i++) {
      const title = `lat-${i}-${Math.random()}`
      const seen = new Promise<number>((resolve) => {
        const check = (): void => {
          if (rows.some((row) => row.value.title === title)) {
            waiters.delete(check)
            resolve(performance.now())
          }
        }
        waiters.add(check)
      })
      const started = performance.now()
      void items().set(`lat-${i}`, { title })
      samples.push((await seen) - started)
    }
    return samples
  },
  status(): ClientStatus {
    if (!client) throw new Error('start() first')
    return client.status.get()
  },
  isLeader(): boolean {
    return client?.runtime.isLeader() ?? false
  },
  async close(): Promise<void> {
    await client?.close()
    client = undefined
  },
}

declare global {
  interface Window {
    harness: typeof harness
  }
}
window.harness = harness

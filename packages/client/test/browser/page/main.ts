/**
 * The page the Chromium tests drive: it imports the SDK the way an app does
 * (`@outpost/client`, bundled by Vite) and exposes a small harness on `window.harness`.
 */
import { createClient, type ClientInspectorSnapshot, type ClientStatus, type Lease, type OutpostClient, type Presence, type PublishResult, type Row } from '@outpost/client'

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
const heard = new Map<string, { at: number; sent: number; local: boolean }[]>()
const leases = new Map<string, Lease>()
const presences = new Map<string, Presence<{ name: string }>>()

function items() {
  if (!client) throw new Error('start() first')
  return client.map<Item>(mapName)
}

function wallNow(): number {
  return performance.timeOrigin + performance.now()
}

const harness = {
  async start(options: { name: string; url?: string; offline?: boolean }): Promise<string> {
    mapName = `items-${options.name}`
    client = createClient({ name: options.name, ...(options.url === undefined ? {} : { url: options.url }), ...(options.offline === true ? { offline: true } : {}) })
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
  /**
   * `n` writes to a few keys, each checked after microtasks only: a message from the worker
   * needs a task, so a write seen by then was shown by this tab's overlay. Also counts
   * rows that went back to an older title of their key after a newer one was shown (the
   * worker's answer replacing the overlay must never do that).
   */
  async overlayChecks(n: number): Promise<{ shownAtOnce: number; wentBack: number; final: Record<string, string>; written: Record<string, string> }> {
    const order = new Map<string, number>()
    const highest = new Map<string, number>()
    let wentBack = 0
    let first: (() => void) | undefined
    const live = new Promise<void>((resolve) => (first = resolve))
    const unsubscribe = items()
      .query({ where: { startsWith: ['title', 'ov:'] } })
      .subscribe((next) => {
        first?.()
        for (const row of next) {
          const at = order.get(row.value.title) ?? -1
          if (at < (highest.get(row.key) ?? -1)) wentBack++
          else highest.set(row.key, at)
        }
      })
    // The overlay applies writes to rows the tab holds: wait for the worker's first rows.
    await live
    let shownAtOnce = 0
    const writes: Promise<void>[] = []
    const written: Record<string, string> = {}
    for (let i = 0; i < n; i++) {
      const key = `ov-${i % 5}`
      const title = `ov:${i}:${Math.random()}`
      order.set(title, i)
      written[key] = title
      writes.push(items().set(key, { title }).local)
      for (let turn = 0; turn < 20; turn++) await Promise.resolve()
      if (highest.get(key) === i) shownAtOnce++
      // Every few writes, let the worker's emissions and answers in, so they interleave with new writes.
      if (i % 3 === 2) await new Promise((resolve) => setTimeout(resolve, 0))
    }
    await Promise.all(writes)
    const final: Record<string, string> = {}
    for (const row of rows) if (row.key.startsWith('ov-')) final[row.key] = row.value.title
    unsubscribe()
    return { shownAtOnce, wentBack, final, written }
  },
  /** Starts collecting messages of `topic` (each stamped with its arrival time). */
  listen(topic: string): void {
    if (!client) throw new Error('start() first')
    const list: { at: number; sent: number; local: boolean }[] = []
    heard.set(topic, list)
    client.topic<{ sent: number }>(topic).subscribe((message, info) => list.push({ at: wallNow(), sent: message.sent, local: info.local }))
  },
  async publish(topic: string): Promise<PublishResult> {
    if (!client) throw new Error('start() first')
    return client.topic<{ sent: number }>(topic).publish({ sent: wallNow() })
  },
  /** Messages heard so far: [delay ms, local] each. */
  heard(topic: string): [number, boolean][] {
    return (heard.get(topic) ?? []).map((m) => [m.at - m.sent, m.local])
  },
  /** Acquires a lock, returns its fencing token and keeps the lease for `release`. */
  async acquire(name: string, ttl: number, wait = 0): Promise<number> {
    if (!client) throw new Error('start() first')
    const lease = await client.lock(name).acquire({ ttl, wait })
    leases.set(name, lease)
    return lease.fencingToken
  },
  async release(name: string): Promise<void> {
    await leases.get(name)?.release()
    leases.delete(name)
  },
  async check(name: string, token: number): Promise<boolean> {
    if (!client) throw new Error('start() first')
    return (await client.lock(name).check(token)).valid
  },
  /** Joins presence room `room` as `name`, with these heartbeat and expiry times. */
  joinPresence(room: string, name: string, timing: { heartbeatMs: number; timeoutMs: number }): void {
    if (!client) throw new Error('start() first')
    presences.set(room, client.presence(room, { name }, timing))
  },
  /** The names of the members this tab sees in `room` (itself included), sorted. */
  presenceNames(room: string): string[] {
    return (presences.get(room)?.members.getSnapshot() ?? []).map((m) => m.state.name).sort()
  },
  async setOffline(offline: boolean): Promise<void> {
    if (!client) throw new Error('start() first')
    await client.setOffline(offline)
  },
  status(): ClientStatus {
    if (!client) throw new Error('start() first')
    return client.status.get()
  },
  /** Resolves with the keys of the first hits of a live title search that include `key`. */
  searchUntil(text: string, key: string, timeoutMs = 10_000): Promise<string[]> {
    if (!client) throw new Error('start() first')
    const live = client.map<Item>(mapName, { search: { fields: ['title'] } }).search(text)
    return new Promise((resolve, reject) => {
      let stop: (() => void) | undefined
      const timer = setTimeout(() => {
        stop?.()
        reject(new Error(`no hit ${key} for "${text}" within ${timeoutMs} ms`))
      }, timeoutMs)
      stop = live.subscribe(
        (hits) => {
          if (!hits.some((hit) => hit.key === key)) return
          clearTimeout(timer)
          queueMicrotask(() => stop?.())
          resolve(hits.map((hit) => hit.key))
        },
        (error) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  },
  isLeader(): boolean {
    return client?.runtime.isLeader() ?? false
  },
  /** The inspector's snapshot, and the first one its live feed pushes that shows `pending` writes in the outbox. */
  async inspect(pending: number): Promise<{ snapshot: ClientInspectorSnapshot; pushed: ClientInspectorSnapshot }> {
    if (!client) throw new Error('start() first')
    const inspector = client.inspector
    const snapshot = await inspector.snapshot()
    const pushed = await new Promise<ClientInspectorSnapshot>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no pushed snapshot with ${pending} pending writes within 10 s`)), 10_000)
      const stop = inspector.subscribe((s) => {
        if (s.outbox.pending !== pending) return
        clearTimeout(timer)
        queueMicrotask(stop)
        resolve(s)
      }, reject)
    })
    return { snapshot, pushed }
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

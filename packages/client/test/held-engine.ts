/**
 * A real engine (on fake-indexeddb) behind a gate the test controls: every answer and
 * every callback the engine sends toward the tab waits in one queue, in the order the
 * engine sent them (like one port), until the test delivers it. Nothing of the engine's
 * logic is replaced; only delivery is held back, so a test can see what the tab shows
 * before the worker round trip completes, and deliver old emissions late.
 */
import { afterEach } from 'vitest'
import { createEngine, type Engine } from '@outpost/worker'
import { DirectTransport, type OwnedEngine } from '../src/engine/direct-transport'
import { EngineSession } from '../src/engine/session'
import { createLwwMap, type LwwMap } from '../src/lww-map'
import type { Live } from '../src/index'
import { PendingWrites } from '../src/overlay/pending-writes'
import { freshDb } from './helpers'

/** One engine, a gate in front of it, and helpers to open tabs on it. */
export class HeldEngine {
  readonly engine: Engine
  readonly #queue: { readonly what: string; readonly deliver: () => void }[] = []
  #holding = false

  constructor(engine?: Engine) {
    const db = freshDb('overlay')
    this.engine = engine ?? createEngine({ name: db.name, mode: 'in-page', indexedDB: db.indexedDB })
  }

  /** From now on, answers and callbacks wait for {@link release}. */
  hold(): void {
    this.#holding = true
  }

  /** Delivers the `n` oldest held messages (all by default), in order; returns what was delivered. */
  release(n = Number.POSITIVE_INFINITY): string[] {
    const delivered: string[] = []
    while (delivered.length < n) {
      const next = this.#queue.shift()
      if (next === undefined) break
      delivered.push(next.what)
      next.deliver()
    }
    return delivered
  }

  /** Delivers everything held and stops holding. */
  open(): void {
    this.#holding = false
    this.release()
  }

  /** What is waiting, oldest first (`answer:<method>` or `callback:<method>`). */
  get queued(): readonly string[] {
    return this.#queue.map((entry) => entry.what)
  }

  /** A tab: its own session and map handle over the gated engine (or straight to the engine with `gated: false`). */
  tab<T extends object>(map: string, gated = true): { map: LwwMap<T>; session: EngineSession; pending: PendingWrites } {
    const session = new EngineSession(new DirectTransport('in-page', Promise.resolve(this.#api(gated))), { timeoutMs: 10_000 })
    const pending = new PendingWrites()
    return { map: createLwwMap<T, T>({ session, cache: new Map(), pending }, map, undefined), session, pending }
  }

  async close(): Promise<void> {
    this.open()
    await this.engine.close()
  }

  #deliver(what: string, deliver: () => void): void {
    if (this.#holding) this.#queue.push({ what, deliver })
    else deliver()
  }

  /** The engine's methods as a tab calls them; `close` is the test's job, not a tab's. */
  #api(gated: boolean): OwnedEngine {
    const engine = this.engine as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
    return new Proxy({} as OwnedEngine, {
      get: (_target, method: string) => {
        if (method === 'close') return async () => {}
        const fn = engine[method]
        if (typeof fn !== 'function') return undefined
        if (!gated) return (...args: unknown[]) => fn.apply(this.engine, args)
        return (...args: unknown[]) => {
          const wired = args.map((arg) =>
            typeof arg === 'function' ? (...values: unknown[]) => this.#deliver(`callback:${method}`, () => (arg as (...v: unknown[]) => void)(...values)) : arg,
          )
          return new Promise((resolve, reject) => {
            fn.apply(this.engine, wired).then(
              (value) => this.#deliver(`answer:${method}`, () => resolve(value)),
              (error: unknown) => this.#deliver(`answer:${method}`, () => reject(error)),
            )
          })
        }
      },
    })
  }
}

/** Lets queued microtasks (the overlay's emissions) run, without giving a macrotask a turn. */
export async function microtasks(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve()
}

/** A factory of held engines, each closed after the test of the calling file that made it. */
export function heldEngines(): () => HeldEngine {
  const engines: HeldEngine[] = []
  afterEach(async () => {
    for (const held of engines.splice(0)) await held.close()
  })
  return () => {
    const held = new HeldEngine()
    engines.push(held)
    return held
  }
}

/** Every value `live` emits, in order, plus a way to stop. */
export function record<V>(live: Live<V>): { readonly values: V[]; readonly stop: () => void } {
  const values: V[] = []
  const stop = live.subscribe((value) => values.push(value))
  return { values, stop }
}

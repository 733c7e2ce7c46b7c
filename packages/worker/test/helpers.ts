/** Shared test helpers: fresh fake IndexedDB factories, waits, the real relay, and `ws` as the engine's WebSocket. */
import 'fake-indexeddb/auto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IDBFactory } from 'fake-indexeddb'
import { WebSocket } from 'ws'
import { createEngine, type CreateEngineOptions, type Engine } from '../src/engine'
import type { Value } from '@outpost/core'
import type { Result } from '../src/engine-api'
import type { WebSocketConstructor } from '../src/sync/sync-client'

/** The `ws` package's WebSocket, typed as the engine expects. */
export const NodeWebSocket = WebSocket as unknown as WebSocketConstructor

/** A fresh, isolated IndexedDB. */
export function freshIdb(): IDBFactory {
  return new IDBFactory()
}

/** Unwraps a Result, failing the test with the serialized error. */
export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.error.code}: ${result.error.message}`)
  return result.value
}

/** Polls `check` until it returns true (or throws after `timeoutMs`, with `what` in the message). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const started = Date.now()
  for (;;) {
    if (await check()) return
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** An engine on `idb` (fresh when omitted) in in-page mode, with `ws` sockets and fast retries. */
export function engineOn(idb: IDBFactory, options: Partial<CreateEngineOptions> = {}): Engine {
  return createEngine({ name: 'test', mode: 'in-page', indexedDB: idb, WebSocket: NodeWebSocket, retryMs: 2_000, backoff: { baseMs: 20, capMs: 200 }, ...options })
}

/** A temporary directory and its cleanup. */
export function tempDir(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'outpost-worker-'))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** Seeded randomness shared by every package's tests (printed seeds, OUTPOST_SEED replays). */
export { prng, testSeed } from '@outpost/core/testing'

/** A counter's current value as the engine's live query reports it (subscribes once, then unsubscribes). */
export async function counterValue(engine: Engine, map: string, key: string): Promise<Value> {
  let value: Value = null
  const id = unwrap(await engine.subscribeValue('counter', map, key, (next) => (value = next)))
  await engine.unsubscribeQuery(id)
  return value
}

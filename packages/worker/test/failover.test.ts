/**
 * Relay URL lists (issue 12): a connection that fails moves to the next URL at once, and
 * backoff starts only after every URL of the list failed in a row. Real TCP listeners
 * that accept and drop each connection stand for relays that die as soon as a client
 * reaches them; each counts the attempts it saw.
 */
import { createServer, type Server } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError } from '@outpost/core'
import type { Engine } from '../src/engine'
import { engineOn, freshIdb, unwrap, waitFor } from './helpers'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A listener that accepts each connection and drops it at once; counts them. */
async function dropper(): Promise<{ url: string; attempts: () => number }> {
  let attempts = 0
  const server: Server = createServer((socket) => {
    attempts++
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}`, attempts: () => attempts }
}

function start(options: Parameters<typeof engineOn>[1]): Engine {
  const engine = engineOn(freshIdb(), options)
  cleanups.push(() => engine.close())
  return engine
}

describe('relay URL list', () => {
  it('tries every URL once without waiting, then backs off before the next round', async () => {
    const relays = [await dropper(), await dropper(), await dropper()]
    // A first backoff of 2-4 s: a round that waited between URLs could not finish in 1.5 s.
    const engine = start({ url: relays.map((r) => r.url), backoff: { baseMs: 4_000, capMs: 4_000 } })
    unwrap(await engine.ready())
    const started = Date.now()
    await waitFor('one attempt per URL', async () => relays.every((r) => r.attempts() >= 1), 1_500)
    const roundMs = Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 700))
    expect(relays.map((r) => r.attempts())).toEqual([1, 1, 1])
    const status = await engine.status()
    expect(status.connection).toBe('backing-off')
    // The next round starts over at the first URL.
    expect(status.relayUrl).toBe(relays[0]?.url)
    console.log(`[figure] a round of 3 dead relay URLs took ${roundMs} ms before the first backoff`)
  })

  it('refuses a bad list when the engine is created, with ConfigError', () => {
    for (const url of [['ws://127.0.0.1:1', 'https://example.com'], [], ['ws://h:99999']]) {
      expect(() => engineOn(freshIdb(), { url })).toThrow(ConfigError)
    }
  })
})

/**
 * Dead and silent connections cost the relay nothing for long:
 * - a socket that sends no valid `hello` within `limits.helloTimeoutMs` gets a typed
 *   TIMEOUT error and close code 4005 (before, 300 such sockets stayed open forever);
 * - a session that is silent (no frame, no WebSocket pong) for two `limits.heartbeatMs`
 *   intervals is terminated (close code 4006), even when its peer stopped reading and will
 *   never see a close frame; an idle peer that answers pings stays connected.
 * Elapsed times are printed, never asserted: the bounds are stated in the README.
 */
import type { Socket } from 'node:net'
import type { ErrorMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(limits: Record<string, number>) {
  const started = await startRelay({ limits })
  cleanups.push(started.stop)
  return started.relay
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
    }),
  ])
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('hello deadline', () => {
  it('closes 50 sockets that never send hello, each with a typed TIMEOUT error and close code 4005', async () => {
    const helloTimeoutMs = 400
    const r = await relay({ helloTimeoutMs })
    const began = Date.now()
    const silent = await Promise.all(Array.from({ length: 50 }, () => TestClient.open(r.url)))
    // Not `sessionCount === 50` here: on a loaded machine opening 50 sockets can take longer
    // than the deadline, so the first ones may already be closed. Each close below is 4005.
    const closes = await withTimeout(Promise.all(silent.map((c) => c.closed)), 10_000, 'every silent socket closed')
    const elapsed = Date.now() - began
    console.log(`hello deadline ${helloTimeoutMs} ms: 50 silent sockets closed after ${elapsed} ms`)
    for (const [i, closed] of closes.entries()) {
      expect(closed.code).toBe(4005)
      expect(closed.reason).toMatch(/hello/)
      const errors = silent[i]?.all<ErrorMessage>((m) => m.type === 'error') ?? []
      expect(errors.map((e) => e.error.code)).toEqual(['TIMEOUT'])
    }
    expect(r.sessionCount).toBe(0)
  })

  it('leaves a session that sent hello in time open past the deadline', async () => {
    const r = await relay({ helloTimeoutMs: 200 })
    const { client } = await TestClient.connect(r.url)
    cleanups.push(() => client.close())
    await sleep(600)
    expect(client.ws.readyState).toBe(WebSocket.OPEN)
    expect((await client.ops([update(client.clock, 'm', 'k', { x: 1 })])).results).toEqual([null])
  })
})

describe('heartbeat', () => {
  it('terminates a session whose peer stopped reading (no frames, no pongs); keeps an idle one that answers pings', async () => {
    const heartbeatMs = 200
    const r = await relay({ heartbeatMs })
    const { client: idle } = await TestClient.connect(r.url)
    cleanups.push(() => idle.close())
    const { client: dead } = await TestClient.connect(r.url)
    expect(r.sessionCount).toBe(2)
    // The peer's process hangs: it reads nothing, so it neither sends nor answers pings.
    const socket = (dead.ws as unknown as { _socket: Socket })._socket
    socket.pause()
    const began = Date.now()
    await until('the silent session dropped', () => r.sessionCount === 1)
    console.log(`heartbeat ${heartbeatMs} ms: a silent session was dropped after ${Date.now() - began} ms`)
    // The relay destroyed the connection rather than waiting for a close handshake the peer would never answer.
    socket.resume()
    const closed = await withTimeout(dead.closed, 10_000, 'the dead peer sees its socket gone')
    expect(closed.code).toBe(1006)

    // The idle peer answered every ping (ws does so automatically) and is still served.
    await sleep(heartbeatMs * 4)
    expect(idle.ws.readyState).toBe(WebSocket.OPEN)
    expect((await idle.ops([update(idle.clock, 'm', 'k', { x: 1 })])).results).toEqual([null])
  })

  it('also times out a socket that opened but went silent before hello, when the hello deadline is longer', async () => {
    const r = await relay({ heartbeatMs: 100, helloTimeoutMs: 60_000 })
    const silent = await TestClient.open(r.url)
    const socket = (silent.ws as unknown as { _socket: Socket })._socket
    socket.pause()
    await until('the silent socket dropped', () => r.sessionCount === 0)
    socket.resume()
    expect((await withTimeout(silent.closed, 10_000, 'closed')).code).toBe(1006)
  })
})

/**
 * The client side of dead connections (issue 10 §3): a connection that stops delivering
 * without closing (a blackholing proxy) is declared dead and replaced within the stated
 * bound, and the first hello carries the app's token (the engine waits for its auth
 * callback before it connects). Real relay; a TCP proxy between them can blackhole.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import { DEFAULT_DEAD_MS, DEFAULT_PING_MS } from '../src/sync/sync-client'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relayWith(config: Parameters<typeof createRelay>[0] = {}): Promise<Relay> {
  const dir = tempDir()
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent', ...config })
  cleanups.push(async () => {
    await relay.close()
    dir.remove()
  })
  return relay
}

/** A TCP proxy whose open connections can be blackholed: bytes stop flowing both ways, nothing closes. */
async function blackholeProxy(targetPort: number): Promise<{ url: string; blackhole: () => void; connections: () => number }> {
  const pairs: { client: Socket; upstream: Socket; dead: boolean }[] = []
  let count = 0
  const server: Server = createServer((client) => {
    count++
    const upstream = tcpConnect(targetPort, '127.0.0.1')
    const pair = { client, upstream, dead: false }
    pairs.push(pair)
    client.on('data', (chunk) => void (pair.dead || upstream.write(chunk)))
    upstream.on('data', (chunk) => void (pair.dead || client.write(chunk)))
    const end = (): void => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) {
          p.client.destroy()
          p.upstream.destroy()
        }
        server.close(() => resolve())
      }),
  )
  return {
    url: `ws://127.0.0.1:${(server.address() as { port: number }).port}`,
    blackhole: () => {
      for (const p of pairs) p.dead = true
    },
    connections: () => count,
  }
}

function start(options: Parameters<typeof engineOn>[1]): Engine {
  const engine = engineOn(freshIdb(), options)
  cleanups.push(() => engine.close())
  return engine
}

describe('dead connections', () => {
  it('declares a blackholed connection dead and reconnects within the bound', async () => {
    const relay = await relayWith()
    const proxy = await blackholeProxy(relay.port)
    const engine = start({ url: proxy.url, pingMs: 100, deadMs: 600 })
    unwrap(await engine.ready())
    await waitFor('live', async () => (await engine.status()).connection === 'live')
    const started = Date.now()
    proxy.blackhole()
    await waitFor('left live', async () => (await engine.status()).connection !== 'live', 5_000)
    const detected = Date.now() - started
    await waitFor('live again on a new connection', async () => (await engine.status()).connection === 'live', 10_000)
    console.log(`[figure] blackholed connection detected after ${detected} ms (deadMs 600, pingMs 100); reconnected after ${Date.now() - started} ms`)
    expect(proxy.connections()).toBe(2)
    expect((await engine.status()).lastError?.code).toBe('TIMEOUT')
    // Writes made while the connection was dead still persist.
    unwrap(await engine.set('m', 'k', { v: 1 }))
    await waitFor('persisted', async () => (await engine.status()).pendingWrites === 0)
  })

  it('states a default bound of at most 15 s (dead after DEFAULT_DEAD_MS of silence, checked every second)', () => {
    // The README's bound; a healthy connection carries a ping well inside it.
    expect(DEFAULT_DEAD_MS + 1_000).toBeLessThanOrEqual(15_000)
    expect(DEFAULT_PING_MS * 2).toBeLessThanOrEqual(DEFAULT_DEAD_MS)
  })
})

describe('the first hello', () => {
  it('carries the token: the engine waits for the auth callback before connecting', async () => {
    const secret = 'liveness-test-secret-of-at-least-32-chars'
    const relay = await relayWith({ auth: { secret } })
    const { SignJWT } = await import('jose')
    const engine = start({ url: relay.url, authRequired: true })
    unwrap(await engine.ready())
    // No token yet: the engine does not connect (a tokenless hello would be refused).
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect((await engine.status()).connection).toBe('connecting')
    await engine.setAuthProvider(async () => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret)))
    await waitFor('live', async () => (await engine.status()).connection === 'live')
    const metrics = await relay.metrics.registry.getSingleMetricAsString('outpost_errors_total')
    expect(metrics).not.toContain('UNAUTHENTICATED')
    expect((await engine.status()).lastError).toBeNull()
  })
})

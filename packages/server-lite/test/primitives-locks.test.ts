/**
 * Locks through a real relay and real sockets: mutual exclusion under contention (20
 * clients writing a FencedResource with their tokens: never two holders, no stale write
 * accepted, tokens strictly increasing), FIFO order of waiters, LOCK_FAILED after `wait`,
 * a disconnected holder keeps the lock until its TTL and not longer, a paused holder's late
 * write is refused by the fence, extend/release with stale tokens fail, `lock-check` and
 * the HTTP fencing endpoints (with auth and lock rules). Prints acquire latency.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { LockGrantedMessage } from '@outpost/core'
import { FencedResource } from '../src/index'
import { TestClient, startRelay } from './helpers/client'
import { acquire, call, expectType, percentile, release, sleep } from './helpers/primitives'
import { AUTH, token } from './helpers/tokens'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(config: Parameters<typeof startRelay>[0] = {}): Promise<{ url: string; httpUrl: string }> {
  const started = await startRelay(config)
  cleanups.push(started.stop)
  return { url: started.relay.url, httpUrl: started.relay.httpUrl }
}

const ADMIN = 'lock-tests-admin-token-0123456789abcdef'

/**
 * Waits until the relay reports `count(waiters)` true for lock `name` (its admin endpoint):
 * requests are ordered by what the relay has queued, not by how long the test slept.
 */
async function waitersOf(httpUrl: string, name: string, ok: (waiters: number) => boolean): Promise<void> {
  const deadline = Date.now() + 20_000
  for (;;) {
    // The list (not `?name=`) carries each lock's waiters.
    const response = await fetch(`${httpUrl}/admin/locks`, { headers: { authorization: `Bearer ${ADMIN}` } })
    // The admin endpoints are rate limited (20 a second after a burst): wait as told.
    if (response.status === 429) {
      await sleep(((await response.json()) as { error: { retryAfterMs: number } }).error.retryAfterMs)
      continue
    }
    const body = (await response.json()) as { items: { name: string; waiters: number }[] }
    if (ok(body.items.find((lock) => lock.name === name)?.waiters ?? 0)) return
    if (Date.now() > deadline) throw new Error(`lock ${name}: the waiters never matched; last ${JSON.stringify(body)}`)
    await sleep(25)
  }
}

async function connect(url: string, options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
  const { client } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return client
}

describe('locks', () => {
  it('give mutual exclusion under contention from 20 clients; the fence accepts every write, tokens strictly increase', async () => {
    const { url } = await relay()
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(url)))
    const resource = new FencedResource<number>(0)
    const rounds = 5
    let holders = 0
    let maxHolders = 0
    const tokens: number[] = []
    const latencies: number[] = []
    await Promise.all(
      clients.map(async (client) => {
        for (let round = 0; round < rounds; round++) {
          const started = performance.now()
          const grant = expectType(await acquire(client, 'counter', 10_000, 30_000), 'lock-granted')
          latencies.push(performance.now() - started)
          holders++
          maxHolders = Math.max(maxHolders, holders)
          tokens.push(grant.token)
          const before = resource.value
          await sleep(1)
          resource.write(grant.token, (n) => n + 1)
          // A lost update would show here if two clients were inside at once.
          expect(resource.value).toBe(before + 1)
          holders--
          expectType(await release(client, 'counter', grant.token), 'lock-released')
        }
      }),
    )
    expect(maxHolders).toBe(1)
    expect(resource.value).toBe(20 * rounds)
    expect(resource.rejected).toBe(0)
    expect(tokens).toEqual(Array.from({ length: 20 * rounds }, (_, i) => i + 1))
    console.log(`lock acquire latency, 20 clients x ${rounds} rounds on one lock: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`)
  })

  it('grant waiters in FIFO order', async () => {
    const { url, httpUrl } = await relay({ adminToken: ADMIN })
    const holder = await connect(url)
    const waiters = await Promise.all(Array.from({ length: 5 }, () => connect(url)))
    const first = expectType(await acquire(holder, 'fifo', 10_000, 0), 'lock-granted')
    const order: number[] = []
    const done: Promise<number>[] = []
    for (const [i, client] of waiters.entries()) {
      done.push(
        (async () => {
          const grant = expectType(await acquire(client, 'fifo', 10_000, 20_000), 'lock-granted')
          order.push(i)
          await release(client, 'fifo', grant.token)
          return grant.token
        })(),
      )
      // The relay has queued this request before the next one is sent.
      await waitersOf(httpUrl, 'fifo', (n) => n === i + 1)
    }
    expectType(await release(holder, 'fifo', first.token), 'lock-released')
    const grantedTokens = await Promise.all(done)
    expect(order).toEqual([0, 1, 2, 3, 4])
    expect(grantedTokens).toEqual([2, 3, 4, 5, 6])
  })

  it('fail with LOCK_FAILED after the wait, and at once with wait 0, leaving the holder untouched', async () => {
    const { url } = await relay()
    const [holder, other] = await Promise.all([connect(url), connect(url)])
    const grant = expectType(await acquire(holder, 'busy', 10_000, 0), 'lock-granted')
    const started = Date.now()
    const timedOut = await acquire(other, 'busy', 10_000, 300)
    const waited = Date.now() - started
    expect(timedOut).toMatchObject({ type: 'error', error: { code: 'LOCK_FAILED' } })
    expect(waited).toBeGreaterThanOrEqual(290)
    expect(waited).toBeLessThan(3_000)
    expect(await acquire(other, 'busy', 10_000, 0)).toMatchObject({ type: 'error', error: { code: 'LOCK_FAILED' } })
    const status = await call(other, (id) => ({ type: 'lock-check', id, name: 'busy', token: grant.token }))
    expect(status).toMatchObject({ type: 'lock-status', valid: true, current: 1 })
    // A timed-out waiter is gone from the queue: the release leaves the lock free.
    await release(holder, 'busy', grant.token)
    expect(expectType(await acquire(other, 'busy', 1_000, 0), 'lock-granted').token).toBe(2)
  })

  it('keep the lock of a disconnected holder until its TTL, not before, then grant the next waiter', async () => {
    const { url } = await relay()
    const holder = await connect(url)
    const grant = expectType(await acquire(holder, 'lease', 1_200, 0), 'lock-granted')
    await holder.close()
    const next = await connect(url)
    const asked = Date.now()
    const second = expectType(await acquire(next, 'lease', 5_000, 10_000), 'lock-granted')
    const grantedAt = Date.now()
    expect(grantedAt).toBeGreaterThanOrEqual(grant.expiresAt - 5)
    expect(grantedAt - asked).toBeGreaterThan(800)
    expect(grantedAt - grant.expiresAt).toBeLessThan(1_000)
    expect(second.token).toBe(grant.token + 1)
  })

  it('refuse the late write of a holder paused past its TTL (fencing), and tell it the lease was lost', async () => {
    const { url } = await relay()
    const [slow, fast] = await Promise.all([connect(url), connect(url)])
    const resource = new FencedResource<string[]>([])
    const stale = expectType(await acquire(slow, 'doc', 300, 0), 'lock-granted')
    resource.write(stale.token, (log) => [...log, 'slow: start'])
    // The slow holder "pauses" (GC, suspended laptop) past its lease.
    const lost = await slow.waitAny((m) => m.type === 'lock-lost', 5_000)
    expect(lost).toMatchObject({ type: 'lock-lost', name: 'doc', token: stale.token, reason: 'expired' })
    const fresh = expectType(await acquire(fast, 'doc', 5_000, 5_000), 'lock-granted')
    expect(fresh.token).toBeGreaterThan(stale.token)
    resource.write(fresh.token, (log) => [...log, 'fast'])
    // The slow one wakes up and writes with its old token: refused, nothing changed.
    expect(() => resource.write(stale.token, (log) => [...log, 'slow: late'])).toThrowError(expect.objectContaining({ code: 'LOCK_FAILED' }))
    expect(resource.value).toEqual(['slow: start', 'fast'])
    expect(resource.rejected).toBe(1)
    // The relay agrees: the old token is not valid, extend and release with it fail.
    expect(await call(slow, (id) => ({ type: 'lock-check', id, name: 'doc', token: stale.token }))).toMatchObject({ valid: false, current: fresh.token })
    expect(await call(slow, (id) => ({ type: 'lock-extend', id, name: 'doc', token: stale.token, ttl: 1_000 }))).toMatchObject({ type: 'error', error: { code: 'LOCK_FAILED' } })
    expect(await release(slow, 'doc', stale.token)).toMatchObject({ type: 'error', error: { code: 'LOCK_FAILED' } })
    expect(await call(fast, (id) => ({ type: 'lock-check', id, name: 'doc', token: fresh.token }))).toMatchObject({ valid: true })
  })

  it('extend a lease past its first TTL', async () => {
    const { url } = await relay()
    const [holder, other] = await Promise.all([connect(url), connect(url)])
    // Generous margins (extend every 500 ms, TTL 1.5 s): a loaded CI machine must not expire it.
    const grant = expectType(await acquire(holder, 'job', 1_500, 0), 'lock-granted')
    for (let i = 0; i < 4; i++) {
      await sleep(500)
      const extended = expectType(await call<LockGrantedMessage>(holder, (id) => ({ type: 'lock-extend', id, name: 'job', token: grant.token, ttl: 1_500 })), 'lock-granted')
      expect(extended.token).toBe(grant.token)
      expect(extended.expiresAt).toBeGreaterThan(grant.expiresAt)
    }
    // Well after the first TTL ran out, it is still held.
    expect(await acquire(other, 'job', 1_000, 0)).toMatchObject({ type: 'error', error: { code: 'LOCK_FAILED' } })
    expect(holder.all((m) => m.type === 'lock-lost')).toHaveLength(0)
  })

  it('serve the HTTP fencing endpoints with auth and lock rules', async () => {
    const { url, httpUrl } = await relay({ auth: AUTH, rules: { maps: {}, locks: { 'billing:*': 'authenticated', 'admin': { eq: ['role', 'admin'] } } } })
    const bobToken = await token('bob')
    const bob = await connect(url, { token: bobToken })
    const grant = expectType(await acquire(bob, 'billing:42', 5_000, 0), 'lock-granted')
    expect(await acquire(bob, 'admin', 5_000, 0)).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } })
    expect(await acquire(bob, 'other', 5_000, 0)).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } })
    const auth = { authorization: `Bearer ${bobToken}` }

    const info = await fetch(`${httpUrl}/locks/billing%3A42`, { headers: auth })
    expect(info.status).toBe(200)
    expect(await info.json()).toEqual({ name: 'billing:42', current: grant.token, holder: true, expiresAt: grant.expiresAt })
    const check = async (t: unknown, headers: Record<string, string> = auth): Promise<Response> =>
      fetch(`${httpUrl}/locks/billing:42/check`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ token: t }) })
    const valid = await check(grant.token)
    expect(await valid.json()).toEqual({ valid: true, current: grant.token })
    expect(await (await check(grant.token - 1)).json()).toEqual({ valid: false, current: grant.token })
    expect((await check('x')).status).toBe(400)
    expect((await check(grant.token, {})).status).toBe(401)
    expect((await check(grant.token, { authorization: 'Bearer not-a-jwt' })).status).toBe(401)
    expect((await fetch(`${httpUrl}/locks/admin`, { headers: auth })).status).toBe(403)

    await release(bob, 'billing:42', grant.token)
    expect(await (await fetch(`${httpUrl}/locks/billing:42`, { headers: auth })).json()).toEqual({ name: 'billing:42', current: grant.token, holder: false, expiresAt: null })
    expect(await (await check(grant.token)).json()).toEqual({ valid: false, current: grant.token })
  })

  it('drop the waiting requests of a client that disconnects', async () => {
    const { url, httpUrl } = await relay({ adminToken: ADMIN })
    const [holder, leaver, stayer] = await Promise.all([connect(url), connect(url), connect(url)])
    const grant = expectType(await acquire(holder, 'q', 10_000, 0), 'lock-granted')
    leaver.send({ type: 'lock-acquire', id: 1, name: 'q', ttl: 10_000, wait: 20_000 })
    await waitersOf(httpUrl, 'q', (n) => n === 1)
    const stayerGrant = acquire(stayer, 'q', 10_000, 20_000)
    await waitersOf(httpUrl, 'q', (n) => n === 2)
    await leaver.close()
    // The relay saw the close and dropped the leaver's request.
    await waitersOf(httpUrl, 'q', (n) => n === 1)
    await release(holder, 'q', grant.token)
    // The next token goes to the client still waiting, not to the one that left.
    expect(expectType(await stayerGrant, 'lock-granted').token).toBe(grant.token + 1)
  })
})

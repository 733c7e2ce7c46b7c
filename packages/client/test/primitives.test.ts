/**
 * The SDK's coordination primitives, as an app uses them: topics between tabs (two
 * clients on one engine over MessageChannel + comlink, like two tabs on a SharedWorker,
 * offline) and between devices (in-page engines on fake-indexeddb against the real relay
 * on 127.0.0.1:0); presence with join, update, leave and expiry; lock leases with fencing
 * tokens, hand-over and loss; entry processors with typed errors; counters that sync
 * without an explicit `sync()`.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createRelay, type Relay } from '@outpost/server-lite'
import { createEngine, exposeEngine } from '@outpost/worker'
import { ForbiddenError, LockError, NotFoundError, OfflineError, ProcessorError, createClient, type OutpostClient, type PresenceMember } from '../src/index'
import { freshDb, until, waitFor } from './helpers'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

type RelayConfig = Parameters<typeof createRelay>[0]

async function relayWith(config: Partial<RelayConfig> = {}): Promise<Relay> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-client-primitives-'))
  const relay = await createRelay(
    { port: 0, host: '127.0.0.1', dataDir: dir, logLevel: 'silent', ...config },
    {
      functions: {
        processors: {
          decrement: ({ value, args }) => {
            const by = (args as { by?: number } | null)?.by ?? 1
            const count = typeof value?.['count'] === 'number' ? value['count'] : 0
            if (count - by < 0) throw new Error(`only ${count} left`)
            return { value: { ...value, count: count - by }, result: count - by }
          },
        },
      },
    },
  )
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  cleanups.push(() => relay.close())
  return relay
}

function device(relay: Relay, options: { offline?: boolean } = {}): OutpostClient {
  const db = freshDb('primitives')
  const client = createClient({
    name: db.name,
    url: relay.url,
    mode: 'in-page',
    offline: options.offline ?? false,
    engine: { indexedDB: db.indexedDB, WebSocket: WebSocket as never, backoff: { baseMs: 20, capMs: 200 } },
  })
  cleanups.push(() => client.close())
  return client
}

/** Two "tabs": two clients talking to one engine over MessageChannels, as a SharedWorker serves tabs. */
function twoTabs(url?: string): [OutpostClient, OutpostClient] {
  const db = freshDb('tabs')
  const engine = createEngine({
    name: db.name,
    mode: 'shared-worker',
    indexedDB: db.indexedDB,
    ...(url === undefined ? {} : { url, WebSocket: WebSocket as never }),
  })
  const ports: MessagePort[] = []
  const connect = (): MessagePort => {
    const channel = new MessageChannel()
    exposeEngine(engine, channel.port1)
    ports.push(channel.port1, channel.port2)
    return channel.port2
  }
  const tabs: [OutpostClient, OutpostClient] = [createClient({ name: db.name, connect }), createClient({ name: db.name, connect })]
  cleanups.push(async () => {
    for (const tab of tabs) await tab.close()
    for (const port of ports) port.close()
    await engine.close()
  })
  return tabs
}

async function live(client: OutpostClient): Promise<void> {
  await client.ready()
  await until(() => client.status.get().connection === 'live', 10_000, 'live')
}

function names<S extends { name: string }>(members: readonly PresenceMember<S>[]): string[] {
  return members.map((m) => `${m.state.name}${m.self ? '*' : ''}`).sort()
}

describe('topics', () => {
  it('tab to tab on one engine, offline: delivered to the other tab, not back to the sender', async () => {
    const [a, b] = twoTabs()
    const atB: unknown[] = []
    const atA: unknown[] = []
    b.topic<{ text: string }>('room:42').subscribe((m, info) => atB.push({ ...m, local: info.local }))
    a.topic('room:42').subscribe((m) => atA.push(m))
    await until(async () => (await a.topic('room:42').publish({ text: 'probe' })).local === 1, 5_000, 'b subscribed')
    await until(() => atB.length === 1)
    const result = await a.topic<{ text: string }>('room:42').publish({ text: 'hi' })
    expect(result).toEqual({ local: 1, remote: 'not-sent' })
    await until(() => atB.length === 2)
    expect(atB).toEqual([
      { text: 'probe', local: true },
      { text: 'hi', local: true },
    ])
    expect(atA).toEqual([])
  })

  it('device to device through the relay; a rules denial is a ForbiddenError on publish and on subscribe', async () => {
    const relay = await relayWith({ rules: { maps: {}, topics: { 'room:*': { publish: 'public', subscribe: 'public' } } } })
    const a = device(relay)
    const b = device(relay)
    await Promise.all([live(a), live(b)])
    const got: string[] = []
    b.topic<string>('room:7').subscribe((m, info) => got.push(`${m}/${info.local ? 'local' : 'remote'}`))
    await until(async () => (await a.topic('room:7').publish('probe')).delivered === 1, 5_000, 'b subscribed on the relay')
    const result = await a.topic<string>('room:7').publish('hello')
    expect(result).toEqual({ local: 0, remote: 'delivered', delivered: 1 })
    await until(() => got.includes('hello/remote'))

    await expect(a.topic('secret').publish('psst')).rejects.toBeInstanceOf(ForbiddenError)
    const refused = await new Promise<unknown>((resolve) => b.topic('secret').subscribe(() => {}, resolve))
    expect(refused).toBeInstanceOf(ForbiddenError)
    expect(b.status.get().connection).toBe('live')
  })

  it('publishing while the relay is unreachable delivers locally and reports not-sent', async () => {
    const relay = await relayWith()
    const [a, b] = twoTabs(relay.url)
    await live(a)
    await a.setOffline(true)
    const got: number[] = []
    b.topic<number>('t').subscribe((m) => got.push(m))
    await until(async () => (await a.topic('t').publish(0)).local === 1, 5_000, 'b subscribed')
    expect(await a.topic<number>('t').publish(1)).toEqual({ local: 1, remote: 'not-sent' })
    await until(() => got.includes(1))
  })
})

describe('presence', () => {
  it('lists tabs and devices, follows updates, leaves, and expires a silent member', async () => {
    const relay = await relayWith()
    const [tab1, tab2] = twoTabs(relay.url)
    const other = device(relay)
    await Promise.all([live(tab1), live(other)])
    // Short, but with room for a loaded CI machine (a late heartbeat must not expire a live member).
    const fast = { heartbeatMs: 200, timeoutMs: 1_500 }
    const p1 = tab1.presence('doc:7', { name: 'Kim', color: 'red' }, fast)
    const p2 = tab2.presence('doc:7', { name: 'Kim (tab 2)', color: 'red' }, fast)
    const p3 = other.presence('doc:7', { name: 'Lou', color: 'blue' }, fast)

    const all = ['Kim', 'Kim (tab 2)', 'Lou']
    await waitFor(p1.members, (m) => m.length === 3, 5_000)
    await waitFor(p3.members, (m) => m.length === 3, 5_000)
    expect(names(p1.members.getSnapshot() ?? [])).toEqual(['Kim (tab 2)', 'Kim*', 'Lou'])
    expect(names(p3.members.getSnapshot() ?? []).map((n) => n.replace('*', ''))).toEqual(all)
    expect(p1.members.getSnapshot()?.[0]).toMatchObject({ id: p1.id, self: true })
    expect(new Set(p1.members.getSnapshot()?.map((m) => m.id)).size).toBe(3)

    await p3.update({ color: 'green' })
    await waitFor(p1.members, (m) => m.some((x) => x.state.name === 'Lou' && x.state.color === 'green'), 5_000)

    await p2.leave()
    await waitFor(p1.members, (m) => m.length === 2, 5_000)
    await waitFor(p3.members, (m) => m.length === 2, 5_000)

    // A device that goes silent (offline: its heartbeats stop reaching the relay) expires.
    await other.setOffline(true)
    const before = Date.now()
    await waitFor(p1.members, (m) => m.length === 1, 5_000)
    expect(Date.now() - before).toBeGreaterThanOrEqual(300)
    expect(p1.members.getSnapshot()?.[0]?.self).toBe(true)
  })
})

describe('locks', () => {
  it('acquire, extend, hand over with a larger fencing token, check, release', async () => {
    const relay = await relayWith()
    const a = device(relay)
    const b = device(relay)
    await Promise.all([live(a), live(b)])
    const lease = await a.lock('invoice:9').acquire({ ttl: 10_000 })
    expect(lease).toMatchObject({ name: 'invoice:9', ended: false })
    expect(lease.fencingToken).toBeGreaterThan(0)
    const firstExpiry = lease.expiresAt
    await new Promise((r) => setTimeout(r, 20))
    await lease.extend(20_000)
    expect(lease.expiresAt).toBeGreaterThan(firstExpiry)

    await expect(b.lock('invoice:9').acquire({ ttl: 10_000, wait: 0 })).rejects.toBeInstanceOf(LockError)
    const next = b.lock('invoice:9').acquire({ ttl: 10_000, wait: 5_000 })
    await lease.release()
    const leaseB = await next
    expect(leaseB.fencingToken).toBeGreaterThan(lease.fencingToken)
    expect(await a.lock('invoice:9').check(lease.fencingToken)).toEqual({ valid: false, current: leaseB.fencingToken })
    expect((await b.lock('invoice:9').check(leaseB.fencingToken)).valid).toBe(true)
    await expect(lease.extend()).rejects.toBeInstanceOf(LockError)
    await leaseB.release()
    expect(leaseB.signal.aborted).toBe(false)
  })

  it('a lease that is not extended is lost: lost resolves, onLost fires, signal aborts', async () => {
    const relay = await relayWith()
    const a = device(relay)
    await live(a)
    const lease = await a.lock('short').acquire({ ttl: 300 })
    const heard: string[] = []
    lease.onLost((l) => heard.push(l.reason))
    expect(await lease.lost).toEqual({ reason: 'expired' })
    expect(lease.signal.aborted).toBe(true)
    expect(lease.ended).toBe(true)
    expect(heard).toEqual(['expired'])
  })

  it('dropping the connection loses the lease; acquiring offline fails fast with OfflineError', async () => {
    const relay = await relayWith()
    const a = device(relay)
    await live(a)
    const lease = await a.lock('held').acquire({ ttl: 5_000 })
    await a.setOffline(true)
    expect(await lease.lost).toEqual({ reason: 'disconnected' })
    const started = Date.now()
    await expect(a.lock('held').acquire({ ttl: 5_000, wait: 5_000 })).rejects.toBeInstanceOf(OfflineError)
    expect(Date.now() - started).toBeLessThan(1_000)
    await expect(a.map('stock').invoke('sku1', 'decrement', { by: 1 })).rejects.toBeInstanceOf(OfflineError)
  })
})

describe('entry processors and counters', () => {
  it('invoke returns the processor result, its write syncs, and failures are typed', async () => {
    const relay = await relayWith()
    const a = device(relay)
    const b = device(relay)
    await Promise.all([live(a), live(b)])
    b.sync('stock')
    await a.map('stock').set('sku1', { name: 'Widget', count: 3 }).persisted
    expect(await a.map('stock').invoke<number>('sku1', 'decrement', { by: 1 })).toBe(2)
    await waitFor(b.map<{ count: number }>('stock').record('sku1'), (r) => r?.count === 2, 10_000)
    const refused = await a.map('stock').invoke('sku1', 'decrement', { by: 10 }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(ProcessorError)
    expect((refused as ProcessorError).message).toContain('only 2 left')
    await expect(a.map('stock').invoke('sku1', 'nope')).rejects.toBeInstanceOf(NotFoundError)
  })

  it('a counter syncs without an explicit sync(), including increments made offline', async () => {
    const relay = await relayWith()
    const a = device(relay)
    const b = device(relay, { offline: true })
    await live(a)
    await a.counter('likes').increment(2)
    await b.counter('likes').increment(5)
    await b.counter('likes').decrement(1)
    await b.setOffline(false)
    expect(await waitFor(a.counter('likes'), (v) => v === 6, 10_000)).toBe(6)
    expect(await waitFor(b.counter('likes'), (v) => v === 6, 10_000)).toBe(6)
  })
})

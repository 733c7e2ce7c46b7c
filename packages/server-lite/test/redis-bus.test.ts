/**
 * The Redis Streams bus passes core's bus suite, each cluster under a key prefix of its own
 * and each relay reaching Redis through a proxy that can cut its line; plus what only a
 * retained stream has to show: what was added while a relay was away still arrives, in
 * order, and a relay the stream was trimmed past signals `overrun`.
 */
import { runBusTests, type BusTestCluster } from '@outpost/core/testing'
import { BusError, type Bus, type BusStatusEvent } from '@outpost/core'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { RedisBus, type RedisBusOptions } from '../src/bus/redis-bus'
import { REDIS_URL, dropPrefix, freshPrefix, redisMissing } from './helpers/redis'
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy'

const missing = await redisMissing()
const prefixes: string[] = []
const admin = missing === undefined ? new Redis(REDIS_URL) : undefined

afterAll(async () => {
  for (const prefix of prefixes) await dropPrefix(prefix)
  admin?.disconnect()
})

const target = new URL(REDIS_URL)
const until = (check: () => void | Promise<void>): Promise<void> => vi.waitFor(check, { timeout: 15_000, interval: 10 })

/** A suite cluster that opens RedisBus instances with any of their options. */
type RedisCluster = Omit<BusTestCluster, 'open'> & { readonly prefix: string; open(options?: Partial<RedisBusOptions>): Promise<RedisBus>; proxyOf(bus: Bus): TcpProxy }

/** A cluster: one key prefix, one proxy per relay. */
function cluster(defaults: Partial<RedisBusOptions> = {}): RedisCluster {
  const prefix = freshPrefix()
  prefixes.push(prefix)
  const proxies = new Map<Bus, TcpProxy>()
  return {
    prefix,
    open: async (options) => {
      const proxy = await startTcpProxy(Number(target.port || 6379), target.hostname)
      try {
        const bus = await RedisBus.open({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: prefix, blockMs: 1_000, reconnectMinMs: 20, reconnectMaxMs: 200, connectTimeoutMs: 2_000, ...defaults, ...options })
        proxies.set(bus, proxy)
        return bus
      } catch (error) {
        await proxy.close()
        throw error
      }
    },
    proxyOf: (bus) => proxies.get(bus) as TcpProxy,
    cut: async (bus) => {
      const proxy = proxies.get(bus) as TcpProxy
      proxy.cut()
      return async () => proxy.restore()
    },
    resources: async (bus) => {
      const list = (await admin?.client('LIST')) as string
      return list.split('\n').filter((line) => line.includes(` name=${(bus as RedisBus).clientName}-`)).length
    },
    dispose: async () => {
      for (const proxy of proxies.values()) await proxy.close()
    },
  }
}

describe.skipIf(missing !== undefined)('RedisBus', () => {
  runBusTests('redis', async () => cluster(), { cuts: true })

  it('delivers, in order and after reconnected, what was added while the relay was cut', async () => {
    const c = cluster()
    const a = await c.open()
    const b = await c.open()
    try {
      const got: number[] = []
      const status: string[] = []
      a.subscribeTopic('t', (m) => got.push(m.seq))
      a.onStatus((event) => status.push(event.type))
      const restore = await c.cut?.(a)
      await until(() => expect(a.health().connected).toBe(false))
      for (let seq = 1; seq <= 20; seq++) await b.publishTopic({ topic: 't', publisher: 'p', seq, payload: Uint8Array.of(seq) })
      await restore?.()
      await until(() => expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i + 1)))
      expect(status).toEqual(['disconnected', 'reconnected'])
    } finally {
      await a.close()
      await b.close()
      await c.dispose()
    }
  })

  it('signals overrun when the stream was trimmed past a relay that was away, then carries on in order', async () => {
    const c = cluster({ maxLen: 10 })
    const a = await c.open()
    const b = await c.open()
    try {
      const got: number[] = []
      const status: BusStatusEvent[] = []
      a.subscribeTopic('t', (m) => got.push(m.seq))
      a.onStatus((event) => status.push(event))
      const restore = await c.cut?.(a)
      await until(() => expect(a.health().connected).toBe(false))
      // MAXLEN ~ trims whole stream nodes (100 entries by default): publish well past that.
      await Promise.all(Array.from({ length: 600 }, (_, i) => b.publishTopic({ topic: 't', publisher: 'p', seq: i + 1, payload: new Uint8Array(0) })))
      const length = await admin?.xlen(`${c.prefix}bus`)
      expect(length).toBeLessThan(600)
      await restore?.()
      await until(() => expect(got[got.length - 1]).toBe(600))
      expect(status.map((s) => s.type)).toEqual(['disconnected', 'reconnected', 'overrun'])
      expect((status[2] as { reason: string }).reason).toMatch(/trimmed/)
      // What survived the trim arrives whole and in order.
      expect(got).toEqual(Array.from({ length: got.length }, (_, i) => 600 - got.length + 1 + i))
      expect(got.length).toBe(length)
    } finally {
      await a.close()
      await b.close()
      await c.dispose()
    }
  })

  it('signals overrun, without a reconnect, when a stalled reader is trimmed past', async () => {
    const c = cluster({ maxLen: 10 })
    const a = await c.open()
    const b = await c.open()
    try {
      const got: number[] = []
      const status: BusStatusEvent[] = []
      a.subscribeTopic('t', (m) => got.push(m.seq))
      a.onStatus((event) => status.push(event))
      await b.publishTopic({ topic: 't', publisher: 'p', seq: 1, payload: new Uint8Array(0) })
      await until(() => expect(got).toEqual([1]))
      c.proxyOf(a).pause()
      await Promise.all(Array.from({ length: 600 }, (_, i) => b.publishTopic({ topic: 't', publisher: 'p', seq: i + 2, payload: new Uint8Array(0) })))
      const length = (await admin?.xlen(`${c.prefix}bus`)) as number
      expect(length).toBeLessThan(600)
      c.proxyOf(a).resume()
      await until(() => expect(got[got.length - 1]).toBe(601))
      expect(status.map((s) => s.type)).toEqual(['overrun'])
      // Whatever was not delivered is exactly what the overrun counts (the reader may have had a
      // message or two in hand when it stalled); what was delivered is in order, the tail whole.
      expect((status[0] as { reason: string }).reason).toMatch(new RegExp(`^${601 - got.length} bus messages were trimmed`))
      expect(got).toEqual([...got].sort((x, y) => x - y))
      expect(new Set(got).size).toBe(got.length)
      expect(got.slice(-length)).toEqual(Array.from({ length }, (_, i) => 601 - length + 1 + i))
      expect(a.health()).toMatchObject({ connected: true, reconnects: 0, gaps: 1 })
    } finally {
      await a.close()
      await b.close()
      await c.dispose()
    }
  })

  it('signals overrun when the stream was recreated while it was away (Redis restarted without its data), and reads the new one', async () => {
    const c = cluster()
    const a = await c.open()
    const b = await c.open()
    try {
      const got: number[] = []
      const status: BusStatusEvent[] = []
      a.subscribeTopic('t', (m) => got.push(m.seq))
      a.onStatus((event) => status.push(event))
      for (let seq = 1; seq <= 5; seq++) await b.publishTopic({ topic: 't', publisher: 'p', seq, payload: new Uint8Array(0) })
      await until(() => expect(got).toHaveLength(5))
      const restore = await c.cut?.(a)
      await until(() => expect(a.health().connected).toBe(false))
      await admin?.del(`${c.prefix}bus`)
      for (let seq = 6; seq <= 7; seq++) await b.publishTopic({ topic: 't', publisher: 'p', seq, payload: new Uint8Array(0) })
      await restore?.()
      await until(() => expect(got).toEqual([1, 2, 3, 4, 5, 6, 7]))
      expect(status.map((s) => s.type)).toEqual(['disconnected', 'reconnected', 'overrun'])
      expect((status[2] as { reason: string }).reason).toMatch(/recreated/)
    } finally {
      await a.close()
      await b.close()
      await c.dispose()
    }
  })

  it('refuses to open with a typed error that hides the password', async () => {
    const proxy = await startTcpProxy(Number(target.port || 6379), target.hostname)
    proxy.cut()
    try {
      const error = await RedisBus.open({ url: `redis://user:secret-password@127.0.0.1:${proxy.port}`, connectTimeoutMs: 1_000 }).then(() => undefined, (e: unknown) => e)
      expect(error).toBeInstanceOf(BusError)
      expect((error as BusError).message).toContain(`127.0.0.1:${proxy.port}`)
      expect((error as BusError).message).not.toContain('secret-password')
    } finally {
      await proxy.close()
    }
  })
})

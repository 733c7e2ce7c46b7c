/**
 * The Postgres bus passes core's bus suite, each cluster in a schema of its own and each
 * relay reaching Postgres through a proxy that can cut its line; plus what only this bus
 * has to show: one NOTIFY per flush however many batches were published, large messages
 * through `bus_messages` (pruned), hints found by polling the store's heads when no NOTIFY
 * came, `overrun` for what cannot be read, and recovery when Postgres drops its sessions.
 */
import { runBusTests, type BusTestCluster } from '@outpost/core/testing'
import { BusError, lwwUpdateState, type Bus, type BusStatusEvent, type MapHint, type Stamp, type WriteRequest } from '@outpost/core'
import pg from 'pg'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { PostgresBus, type PostgresBusOptions } from '../src/bus/postgres-bus'
import { PostgresStore } from '../src/store/postgres-store'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from './helpers/postgres'
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy'

const missing = await postgresMissing()
const schemas: string[] = []
const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 })
admin.on('error', () => undefined)

afterAll(async () => {
  if (missing === undefined) await dropSchemas(schemas)
  await admin.end()
})

/** `POSTGRES_URL` with its port replaced by `port` (a proxy's). */
function via(port: number): string {
  const url = new URL(POSTGRES_URL)
  url.port = String(port)
  return url.toString()
}

const target = Number(new URL(POSTGRES_URL).port || 5432)
const until = (check: () => void | Promise<void>): Promise<void> => vi.waitFor(check, { timeout: 15_000, interval: 10 })

/** A suite cluster that opens PostgresBus instances with any of their options. */
type PostgresCluster = Omit<BusTestCluster, 'open'> & { readonly schema: string; open(options?: Partial<PostgresBusOptions>): Promise<PostgresBus> }

/** A cluster: one schema, one proxy per relay. */
async function cluster(defaults: Partial<PostgresBusOptions> = {}): Promise<PostgresCluster> {
  const schema = freshSchema('bus')
  schemas.push(schema)
  const proxies = new Map<Bus, TcpProxy>()
  return {
    schema,
    open: async (options) => {
      const proxy = await startTcpProxy(target)
      try {
        const bus = await PostgresBus.open({ connectionString: via(proxy.port), schema, reconnectMinMs: 20, reconnectMaxMs: 200, connectTimeoutMs: 2_000, ...defaults, ...options })
        proxies.set(bus, proxy)
        return bus
      } catch (error) {
        await proxy.close()
        throw error
      }
    },
    cut: async (bus) => {
      const proxy = proxies.get(bus) as TcpProxy
      proxy.cut()
      return async () => proxy.restore()
    },
    resources: async (bus) => {
      const { rows } = await admin.query<{ n: string }>('select count(*) as n from pg_stat_activity where application_name = $1', [(bus as PostgresBus).applicationName])
      return Number(rows[0]?.n ?? 0)
    },
    dispose: async () => {
      for (const proxy of proxies.values()) await proxy.close()
    },
  }
}

/** A raw LISTEN on the bus's channel, counting what Postgres actually sends. */
async function rawListener(channel: string): Promise<{ payloads: string[]; end(): Promise<void> }> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  const payloads: string[] = []
  client.on('notification', (n) => {
    if (n.channel === channel) payloads.push(n.payload ?? '')
  })
  await client.query(`listen "${channel}"`)
  return { payloads, end: () => client.end() }
}

function write(map: string, key: string, n: number): WriteRequest {
  const delta = lwwUpdateState({ n }, `${(1_700_000_000_000 + n).toString(36).padStart(10, '0')}-0000-writer` as Stamp)
  return { map, kind: 'lww', key, decide: () => ({ state: delta }) }
}

describe.skipIf(missing !== undefined)('PostgresBus', () => {
  runBusTests('postgres', () => cluster(), { cuts: true })

  it('sends one NOTIFY for everything published in one turn, and one per flush after that', async () => {
    const c = await cluster()
    const [a, b] = [await c.open(), await c.open()]
    const raw = await rawListener(a.channel)
    try {
      const batches: (readonly MapHint[])[] = []
      b.onHints((hints) => batches.push(hints))
      // 200 committed batches published in one turn: one flush, one NOTIFY.
      await Promise.all(Array.from({ length: 200 }, (_, i) => a.publishHints([{ map: `m${i % 7}`, seq: i + 1 }])))
      await until(() => expect(batches).toHaveLength(200))
      expect(batches.map((h) => h[0]?.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
      await until(() => expect(raw.payloads).toHaveLength(1))
      // Awaited one by one, each is its own flush.
      for (let i = 0; i < 5; i++) await a.publishHints([{ map: 'solo', seq: i }])
      await until(() => expect(batches).toHaveLength(205))
      // The raw LISTEN is a connection of its own: it hears the last NOTIFY in its own time.
      await until(() => expect(raw.payloads).toHaveLength(6))
      expect(raw.payloads.every((p) => p.startsWith(`i${a.node} `))).toBe(true)
    } finally {
      await raw.end()
      await a.close()
      await b.close()
      await c.dispose()
    }
  })

  it('sends a packet too large for NOTIFY through bus_messages, and prunes it after the retention', async () => {
    const c = await cluster({ retentionMs: 200 })
    const a = await c.open()
    const b = await c.open()
    const raw = await rawListener(a.channel)
    try {
      const got: Uint8Array[] = []
      b.subscribeTopic('big', (m) => got.push(m.payload))
      const payload = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 7) & 0xff)
      await a.publishTopic({ topic: 'big', publisher: 'p', seq: 1, payload })
      await until(() => expect(got).toHaveLength(1))
      expect(got[0]).toEqual(payload)
      expect(raw.payloads[0]).toMatch(new RegExp(`^r${a.node} \\d+$`))
      const rows = async (): Promise<number> => Number((await admin.query<{ n: string }>(`select count(*) as n from "${c.schema}".bus_messages`)).rows[0]?.n)
      expect(await rows()).toBe(1)
      // Older than the retention by the next large publish: pruned then.
      await new Promise((resolve) => setTimeout(resolve, 250))
      await a.publishTopic({ topic: 'big', publisher: 'p', seq: 2, payload })
      await until(() => expect(got).toHaveLength(2))
      expect(await rows()).toBe(1)
    } finally {
      await raw.end()
      await a.close()
      await b.close()
      await c.dispose()
    }
  })

  it('signals overrun for a notification it cannot read: pruned, corrupt or not Outpost', async () => {
    const c = await cluster()
    const a = await c.open()
    try {
      const status: BusStatusEvent[] = []
      a.onStatus((event) => status.push(event))
      for (const payload of ['rsomeone 999999999', 'isomeone !!!not base64 msgpack', 'hello']) await admin.query('select pg_notify($1, $2)', [a.channel, payload])
      await until(() => expect(status).toHaveLength(3))
      expect(status.map((s) => s.type)).toEqual(['overrun', 'overrun', 'overrun'])
      expect((status[0] as { reason: string }).reason).toMatch(/pruned/)
      expect(a.health().gaps).toBe(3)
      expect(a.health().connected).toBe(true)
    } finally {
      await a.close()
      await c.dispose()
    }
  })

  it('finds commits no hint announced by polling the heads: only moved heads, only watched maps', async () => {
    const c = await cluster()
    const store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema: c.schema, poolSize: 2 })
    const tricky = '__proto__ 😀 ключ'
    await store.applyWrites([write('before-open', 'k', 1)])
    const watched = new Set([tricky, 'before-open', 'other'])
    const a = await c.open({ pollIntervalMs: 30, watchedMaps: () => watched })
    try {
      const seen: { hints: readonly MapHint[]; node: string }[] = []
      a.onHints((hints, origin) => seen.push({ hints, node: origin.node }))
      await store.applyWrites([write('unwatched', 'k', 1), write(tricky, 'k', 1), write(tricky, 'k2', 2)])
      await until(() => expect(seen.flatMap((s) => s.hints)).toContainEqual({ map: tricky, seq: 2 }))
      expect(seen.every((s) => s.node === '')).toBe(true)
      // 'before-open' was learnt at open, 'unwatched' is not watched: neither is announced.
      expect(seen.flatMap((s) => s.hints).map((h) => h.map)).toEqual([tricky])
      await store.applyWrites([write('before-open', 'k', 2)])
      await until(() => expect(seen.flatMap((s) => s.hints)).toContainEqual({ map: 'before-open', seq: 2 }))
    } finally {
      await a.close()
      await store.close()
      await c.dispose()
    }
  })

  it('does not announce by polling what a hint already announced', async () => {
    const c = await cluster()
    const store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema: c.schema, poolSize: 2 })
    const a = await c.open({ pollIntervalMs: 20 })
    const b = await c.open({ pollIntervalMs: 20 })
    try {
      const onB: { map: string; node: string }[] = []
      b.onHints((hints, origin) => onB.push(...hints.map((h) => ({ map: h.map, node: origin.node }))))
      // The hint reaches b before the commit is visible to b's polls (in a relay it follows the commit, and a poll
      // in between may announce it first; either way b hears of it once per head it learns).
      await a.publishHints([{ map: 'hinted', seq: 1 }])
      await until(() => expect(onB).toHaveLength(1))
      await store.applyWrites([write('hinted', 'k', 1)])
      await store.applyWrites([write('silent', 'k', 1)])
      await until(() => expect(onB.map((h) => h.map)).toContain('silent'))
      expect(onB.filter((h) => h.map === 'hinted')).toEqual([{ map: 'hinted', node: a.node }])
    } finally {
      await a.close()
      await b.close()
      await store.close()
      await c.dispose()
    }
  })

  it('recovers when Postgres terminates its sessions: disconnected, reconnected, then delivers again', async () => {
    const c = await cluster()
    const a = await c.open()
    const b = await c.open()
    try {
      const status: string[] = []
      const got: number[] = []
      a.onStatus((event) => status.push(event.type))
      a.subscribeTopic('t', (m) => got.push(m.seq))
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [a.applicationName])
      await until(() => expect(status).toEqual(['disconnected', 'reconnected']))
      await b.publishTopic({ topic: 't', publisher: 'p', seq: 1, payload: new Uint8Array() })
      await until(() => expect(got).toEqual([1]))
      expect(a.health()).toMatchObject({ connected: true, reconnects: 1 })
    } finally {
      await a.close()
      await b.close()
      await c.dispose()
    }
  })

  it('refuses to open with a typed error that names the server without its password', async () => {
    const proxy = await startTcpProxy(target)
    proxy.cut()
    try {
      const url = new URL(via(proxy.port))
      url.password = 'secret-password'
      const error = await PostgresBus.open({ connectionString: url.toString(), schema: freshSchema('bus'), connectTimeoutMs: 1_000 }).then(() => undefined, (e: unknown) => e)
      expect(error).toBeInstanceOf(BusError)
      expect((error as BusError).message).toContain(`127.0.0.1:${proxy.port}`)
      expect((error as BusError).message).not.toContain('secret-password')
    } finally {
      await proxy.close()
    }
  })
})

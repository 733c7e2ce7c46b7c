/**
 * Several relays over one PostgreSQL (each test in its own schema), with raw protocol
 * clients: a change written through one relay reaches subscribers of another (caught up
 * from the store's log), concurrent writes of different fields of one key through two
 * relays both survive, a cursor issued by one relay resumes on another, and locks decided in
 * Postgres exclude across relays with strictly increasing fencing tokens, and entry
 * processors stay atomic per key when three relays run them on one record.
 */
import type { ChangesMessage, RecordValue, SubscribedMessage, SyncedMessage, Value } from '@outpost/core'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { FencedResource } from '../src/index'
import { PostgresLeadership } from '../src/store/postgres-leader'
import { TestClient, startRelay } from './helpers/client'
import { acquire, expectType, invoke, release, sleep } from './helpers/primitives'
import { update } from './helpers/changes'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from './helpers/postgres'

const missing = await postgresMissing()
const schemas: string[] = []
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
afterAll(async () => {
  if (missing === undefined) await dropSchemas(schemas)
})

async function relays(n: number, config: Parameters<typeof startRelay>[0] = { pollMs: 50 }) {
  const schema = freshSchema('so')
  schemas.push(schema)
  const out = []
  for (let i = 0; i < n; i++) {
    const started = await startRelay({ store: POSTGRES_URL, storeSchema: schema, replicaId: `relay-${i}`, ...config })
    cleanups.push(started.stop)
    out.push(started.relay)
  }
  return out
}

async function connect(url: string, options: Parameters<typeof TestClient.connect>[1] = {}) {
  const { client } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return client
}

describe.skipIf(missing !== undefined)('relays over one Postgres', () => {
  it('delivers a change written through one relay to subscribers of another', async () => {
    const [r1, r2] = await relays(2)
    const reader = await connect((r1 as { url: string }).url)
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'docs' } })
    await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
    const writer = await connect((r2 as { url: string }).url)
    expect((await writer.ops([update(writer.clock, 'docs', 'd1', { title: 'via relay 2' })])).results).toEqual([null])
    const arrived = (await reader.waitAny((m) => m.type === 'changes' && m.sub === 1 && m.changes.some((c) => c.key === 'd1'), 10_000)) as ChangesMessage
    expect(arrived.changes.find((c) => c.key === 'd1')?.state).toMatchObject({ fields: [['title', 'via relay 2', expect.any(String)]] })
  })

  it('keeps both fields when two relays write different fields of one key at once', async () => {
    const [r1, r2] = await relays(2)
    const a = await connect((r1 as { url: string }).url)
    const b = await connect((r2 as { url: string }).url)
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).ops([update((i % 2 === 0 ? a : b).clock, 'docs', 'shared', { [`f${i}`]: i })])))
    const reader = await connect((r1 as { url: string }).url)
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'docs' } })
    await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
    const fields = reader.all<ChangesMessage>((m) => m.type === 'changes').flatMap((m) => m.changes.flatMap((c) => (c.kind === 'lww' ? c.state.fields.map((f) => f[0]) : [])))
    expect(new Set(fields)).toEqual(new Set(Array.from({ length: 10 }, (_, i) => `f${i}`)))
  })

  it('resumes on one relay from a cursor another relay issued', async () => {
    const [r1, r2] = await relays(2)
    const writer = await connect((r1 as { url: string }).url)
    await writer.ops(Array.from({ length: 50 }, (_, i) => update(writer.clock, 'docs', `d${i}`, { i })))
    const device = await connect((r1 as { url: string }).url)
    device.send({ type: 'subscribe', sub: 1, shape: { map: 'docs' } })
    const first = (await device.waitAny((m) => m.type === 'synced' && m.sub === 1)) as SyncedMessage
    await device.close()
    await writer.ops([update(writer.clock, 'docs', 'd7', { i: -7 })])
    const moved = await connect((r2 as { url: string }).url, { replicaId: device.replicaId })
    moved.send({ type: 'subscribe', sub: 1, shape: { map: 'docs' }, cursor: first.cursor as string })
    const subscribed = (await moved.waitAny((m) => m.type === 'subscribed' && m.sub === 1)) as SubscribedMessage
    expect(subscribed.resume).toBe('cursor')
    await moved.waitAny((m) => m.type === 'synced' && m.sub === 1)
    const keys = moved.all<ChangesMessage>((m) => m.type === 'changes').flatMap((m) => m.changes.map((c) => c.key))
    expect(keys).toEqual(['d7'])
  })
})

describe.skipIf(missing !== undefined)('locks across relays over one Postgres', () => {
  it('give mutual exclusion to clients of three relays; tokens strictly increase in grant order and the fence accepts every write', async () => {
    const rs = await relays(3)
    const clients = await Promise.all(Array.from({ length: 9 }, (_, i) => connect((rs[i % 3] as { url: string }).url)))
    const resource = new FencedResource<number>(0)
    const rounds = 3
    let holders = 0
    let maxHolders = 0
    const tokens: number[] = []
    await Promise.all(
      clients.map(async (client) => {
        for (let round = 0; round < rounds; round++) {
          const grant = expectType(await acquire(client, 'shared', 10_000, 60_000), 'lock-granted')
          holders++
          maxHolders = Math.max(maxHolders, holders)
          tokens.push(grant.token)
          await sleep(2)
          resource.write(grant.token, (n) => n + 1)
          holders--
          expectType(await release(client, 'shared', grant.token), 'lock-released')
        }
      }),
    )
    expect(maxHolders).toBe(1)
    expect(resource.value).toBe(9 * rounds)
    expect(resource.rejected).toBe(0)
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b))
    expect(new Set(tokens).size).toBe(tokens.length)
  })

  it('refuse a holder whose lease expired once another relay granted the lock; the HTTP fence of any relay agrees', async () => {
    const [r1, r2] = (await relays(2)) as { url: string; httpUrl: string }[]
    const a = await connect((r1 as { url: string }).url)
    const b = await connect((r2 as { url: string }).url)
    const first = expectType(await acquire(a, 'lease', 300, 0), 'lock-granted')
    const second = expectType(await acquire(b, 'lease', 10_000, 5_000), 'lock-granted')
    expect(second.token).toBeGreaterThan(first.token)
    expect(expectType(await release(a, 'lease', first.token), 'error').error.code).toBe('LOCK_FAILED')
    for (const relay of [r1, r2] as { httpUrl: string }[]) {
      const response = await fetch(`${relay.httpUrl}/locks/lease/check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: first.token }) })
      expect(await response.json()).toEqual({ valid: false, current: second.token })
    }
  })
})

describe.skipIf(missing !== undefined)('entry processors across relays over one Postgres', () => {
  it('keep running again while another relay keeps writing the key, and land once it stops (25 lost races in a row)', async () => {
    const schema = freshSchema('sp')
    schemas.push(schema)
    let interfere: (() => Promise<void>) | undefined
    let runs = 0
    // Each of its first 25 runs, another relay writes the key between the processor's read and its write.
    const bump = async ({ value }: { value: RecordValue | undefined }) => {
      runs++
      if (interfere !== undefined && runs <= 25) await interfere()
      const n = typeof value?.['n'] === 'number' ? value['n'] : 0
      return { value: { ...value, n: n + 1 }, result: n + 1 }
    }
    const urls: string[] = []
    for (let i = 0; i < 2; i++) {
      const started = await startRelay({ store: POSTGRES_URL, storeSchema: schema, pollMs: 50, replicaId: `relay-${i}` }, { functions: { processors: { bump } } })
      cleanups.push(started.stop)
      urls.push(started.relay.url)
    }
    const [caller, other] = [await connect(urls[0] as string), await connect(urls[1] as string)]
    await other.ops([update(other.clock, 'items', 'k', { n: 0, other: 0 })])
    let writes = 0
    interfere = async () => {
      writes++
      expect((await other.ops([update(other.clock, 'items', 'k', { other: writes })])).results).toEqual([null])
    }
    expect(expectType(await invoke(caller, 'items', 'k', 'bump', null), 'invoke-result').result).toBe(1)
    expect(runs).toBe(26)
    const reader = await connect(urls[1] as string)
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'items' } })
    await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
    const fields = reader.all<ChangesMessage>((m) => m.type === 'changes').flatMap((m) => m.changes.flatMap((c) => (c.kind === 'lww' ? c.state.fields : [])))
    // The processor's write landed once, on top of every write that beat it.
    expect(new Set(fields.filter((f) => f[0] === 'n').map((f) => f[1]))).toEqual(new Set([1]))
    expect(new Set(fields.filter((f) => f[0] === 'other').map((f) => f[1]))).toEqual(new Set([25]))
  })

  it('stay atomic per key: 50 concurrent decrements through three relays leave exactly start - 50', async () => {
    const schema = freshSchema('sp')
    schemas.push(schema)
    const urls: string[] = []
    for (let i = 0; i < 3; i++) {
      const started = await startRelay({ store: POSTGRES_URL, storeSchema: schema, pollMs: 50, replicaId: `relay-${i}` }, { functions: { processors: { decrement } } })
      cleanups.push(started.stop)
      urls.push(started.relay.url)
    }
    const clients = await Promise.all(Array.from({ length: 6 }, (_, i) => connect(urls[i % 3] as string)))
    const owner = clients[0] as TestClient
    await owner.ops([update(owner.clock, 'items', 'widget', { stock: 100 })])
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => expectType(await invoke(clients[i % 6] as TestClient, 'items', 'widget', 'decrement', 1), 'invoke-result').result as number),
    )
    expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 50 + i))
    const reader = await connect(urls[2] as string)
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'items' } })
    await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
    const stock = reader
      .all<ChangesMessage>((m) => m.type === 'changes')
      .flatMap((m) => m.changes.flatMap((c) => (c.kind === 'lww' ? c.state.fields.filter((f) => f[0] === 'stock').map((f) => f[1]) : [])))
    // A relay that catches up from the log after the slice may send the record again: the same state.
    expect(new Set(stock)).toEqual(new Set([50]))
  })
})

async function decrement({ value, args }: { value: RecordValue | undefined; args: Value }) {
  const stock = typeof value?.['stock'] === 'number' ? value['stock'] : 0
  const by = typeof args === 'number' ? args : 1
  // Yields, so invocations on different relays overlap here.
  await sleep(Math.random() * 2)
  return { value: { ...value, stock: stock - by }, result: stock - by }
}

describe.skipIf(missing !== undefined)('singleton jobs over one Postgres', () => {
  it('run on one relay at a time; another takes over when the leader leaves or loses its connection', async () => {
    const schema = freshSchema('sj')
    const a = new PostgresLeadership(POSTGRES_URL, schema)
    const b = new PostgresLeadership(POSTGRES_URL, schema)
    const other = new PostgresLeadership(POSTGRES_URL, freshSchema('sj'))
    try {
      expect(await a.lead()).toBe(true)
      expect(await b.lead()).toBe(false)
      expect(await a.lead()).toBe(true)
      // Another schema's jobs are another lock.
      expect(await other.lead()).toBe(true)
      await a.close()
      expect(await b.lead()).toBe(true)
      expect(await a.lead()).toBe(false)
      // The leader's connection dies (Postgres restarted it, the network cut it): the lock goes with it.
      const admin = new pg.Client({ connectionString: POSTGRES_URL })
      await admin.connect()
      const c = new PostgresLeadership(POSTGRES_URL, schema)
      expect(await c.lead()).toBe(false)
      const { rowCount } = await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and pid in (select pid from pg_locks where locktype = 'advisory' and granted)`, [`outpost-jobs:${schema}`])
      expect(rowCount).toBe(1)
      await admin.end()
      await sleep(200)
      expect(await c.lead()).toBe(true)
      expect(await b.lead()).toBe(false)
      await c.close()
    } finally {
      await Promise.all([a.close(), b.close(), other.close()])
    }
  })
})

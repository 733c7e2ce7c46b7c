/**
 * Resume by cursor (issue 11 §2), with raw protocol clients against the relay:
 * - `synced` carries a cursor; a reconnect that sends it gets `resume: 'cursor'` and only
 *   what changed since (changed records, deletes as tombstones, move-outs for records that
 *   left the shape), never the whole map;
 * - a cursor that the change log no longer reaches, that another store issued, or that was
 *   issued for another view (the caller's claims changed) is not trusted: the relay falls
 *   back to Merkle reconciliation;
 * - a record the caller saw at its cursor and may no longer see is moved out on resume,
 *   and nothing of its new state is sent.
 */
import type { ChangesMessage, SubscribedMessage, SyncedMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { remove, update } from './helpers/changes'
import { AUTH, token } from './helpers/tokens'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(config: Parameters<typeof startRelay>[0] = {}) {
  const started = await startRelay(config)
  cleanups.push(started.stop)
  return started.relay
}

async function connect(url: string, options: Parameters<typeof TestClient.connect>[1] = {}) {
  const { client } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return client
}

let nextSub = 1

/** Subscribes and waits for `synced`; returns what arrived for it. */
async function subscribe(client: TestClient, shape: Parameters<TestClient['send']>[0] extends infer M ? (M extends { type: 'subscribe'; shape: infer S } ? S : never) : never, extra: { cursor?: string; root?: { path: string; hash: string; count: number } } = {}) {
  const sub = nextSub++
  const start = client.messages.length
  client.send({ type: 'subscribe', sub, shape, ...extra })
  const subscribed = (await client.waitAny((m) => m.type === 'subscribed' && m.sub === sub, 30_000)) as SubscribedMessage
  // A Merkle resume waits for the client's descent (not run here): only the path taken matters then.
  const synced = subscribed.resume === 'merkle' ? undefined : ((await client.waitAny((m) => m.type === 'synced' && m.sub === sub, 30_000)) as SyncedMessage)
  const mine = client.messages.slice(start).filter((m) => 'sub' in m && m.sub === sub)
  const changes = mine.filter((m): m is ChangesMessage => m.type === 'changes')
  return {
    sub,
    resume: subscribed.resume,
    cursor: synced?.cursor as string,
    keys: changes.flatMap((m) => m.changes.map((c) => c.key)).sort(),
    moveOut: changes.flatMap((m) => m.moveOut ?? []).sort(),
  }
}

describe('resume by cursor', () => {
  it('replays only what changed since the cursor: updates, deletes and move-outs', async () => {
    const r = await relay()
    const writer = await connect(r.url)
    for (let i = 0; i < 2_000; i += 200) {
      await writer.ops(Array.from({ length: 200 }, (_, j) => update(writer.clock, 'docs', `d${i + j}`, { n: i + j, team: 'red' })))
    }
    const reader = await connect(r.url)
    const first = await subscribe(reader, { map: 'docs', where: { eq: ['team', 'red'] } })
    expect(first.resume).toBe('slice')
    expect(first.keys.length).toBe(2_000)
    expect(first.cursor).toMatch(/^[0-9a-z]+\.[0-9a-f]{16}\.\d+$/)
    await reader.close()

    await writer.ops([update(writer.clock, 'docs', 'd1', { n: -1 }), update(writer.clock, 'docs', 'd2', { team: 'blue' }), remove(writer.clock, 'docs', 'd3'), update(writer.clock, 'docs', 'new', { team: 'red' })])
    await writer.ops([update(writer.clock, 'docs', 'd1', { n: -2 })])

    const again = await connect(r.url, { replicaId: reader.replicaId })
    const resumed = await subscribe(again, { map: 'docs', where: { eq: ['team', 'red'] } }, { cursor: first.cursor })
    expect(resumed.resume).toBe('cursor')
    // d1 (twice changed, sent once), d3 (its tombstone), new; d2 left the shape.
    expect(resumed.keys).toEqual(['d1', 'd3', 'new'])
    expect(resumed.moveOut).toEqual(['d2'])
    expect(Number(resumed.cursor.split('.')[2])).toBeGreaterThan(Number(first.cursor.split('.')[2]))

    // Resuming from the newest cursor replays nothing.
    const idle = await subscribe(again, { map: 'docs', where: { eq: ['team', 'red'] } }, { cursor: resumed.cursor })
    expect(idle.resume).toBe('cursor')
    expect(idle.keys).toEqual([])
  })

  it('ends a Merkle descent with a cursor too: every entries answer carries the cursor of the join', async () => {
    const r = await relay()
    const writer = await connect(r.url)
    await writer.ops([update(writer.clock, 'docs', 'a', { v: 1 })])
    const reader = await connect(r.url)
    const descent = await subscribe(reader, { map: 'docs' }, { root: { path: '', hash: 'ffffffffffffffff', count: 1 } })
    expect(descent.resume).toBe('merkle')
    reader.send({ type: 'entries', sub: descent.sub, path: '', entries: [] })
    const synced = (await reader.waitAny((m) => m.type === 'synced' && m.sub === descent.sub, 30_000)) as SyncedMessage
    expect(synced.cursor).toMatch(/^[0-9a-z]+\.[0-9a-f]{16}\.\d+$/)
    await writer.ops([update(writer.clock, 'docs', 'b', { v: 2 })])
    const resumed = await subscribe(reader, { map: 'docs' }, { cursor: synced.cursor as string })
    expect(resumed.resume).toBe('cursor')
    expect(resumed.keys).toEqual(['b'])
  })

  it('falls back to Merkle when the log no longer reaches the cursor, or the cursor is foreign', async () => {
    const r = await relay({ changeLogEntries: 1_000 })
    const writer = await connect(r.url)
    await writer.ops([update(writer.clock, 'docs', 'a', { v: 1 })])
    const reader = await connect(r.url)
    const first = await subscribe(reader, { map: 'docs' })
    for (let i = 0; i < 1_200; i += 200) await writer.ops(Array.from({ length: 200 }, (_, j) => update(writer.clock, 'docs', `k${i + j}`, { v: i + j })))
    await r.gc()
    const root = { path: '', hash: 'ffffffffffffffff', count: 1 }
    const stale = await subscribe(reader, { map: 'docs' }, { cursor: first.cursor, root })
    expect(stale.resume).toBe('merkle')
    const forged = `zz${first.cursor.slice(2)}`
    const foreign = await subscribe(reader, { map: 'docs' }, { cursor: forged, root })
    expect(foreign.resume).toBe('merkle')
    const malformed = await subscribe(reader, { map: 'docs' }, { cursor: 'not-a-cursor', root })
    expect(malformed.resume).toBe('merkle')
  })

  it('takes a cursor without a root (welcome says so): replays, or answers merkle and sends nothing more', async () => {
    const r = await relay({ changeLogEntries: 1_000 })
    const writer = await connect(r.url)
    const reader = await connect(r.url)
    expect(reader.messages.find((m) => m.type === 'welcome')).toMatchObject({ cursorWithoutRoot: true })
    await writer.ops([update(writer.clock, 'docs', 'a', { v: 1 })])
    const first = await subscribe(reader, { map: 'docs' })
    await writer.ops([update(writer.clock, 'docs', 'b', { v: 2 })])
    const resumed = await subscribe(reader, { map: 'docs' }, { cursor: first.cursor })
    expect(resumed).toMatchObject({ resume: 'cursor', keys: ['b'] })

    // A cursor it cannot use, alone: the client holds data, so not a slice but `merkle`, and
    // nothing else for that subscription (the client subscribes again with its root).
    for (let i = 0; i < 1_200; i += 200) await writer.ops(Array.from({ length: 200 }, (_, j) => update(writer.clock, 'docs', `k${i + j}`, { v: i + j })))
    await r.gc()
    const stale = await subscribe(reader, { map: 'docs' }, { cursor: first.cursor })
    expect(stale.resume).toBe('merkle')
    const again = await subscribe(reader, { map: 'docs' }, { cursor: resumed.cursor })
    expect(again.resume).toBe('merkle')
    const fresh = await subscribe(reader, { map: 'docs' })
    expect(fresh.resume).toBe('slice')
    // A windowed shape never resumes by cursor, so it is given none (its client sends its root instead).
    const windowed = await subscribe(reader, { map: 'docs', orderBy: [['v', 'asc']], limit: 10 })
    expect(windowed.resume).toBe('slice')
    expect(windowed.cursor).toBeUndefined()
    expect(reader.messages.filter((m) => 'sub' in m && (m.sub === stale.sub || m.sub === again.sub)).map((m) => m.type)).toEqual(['subscribed', 'subscribed'])
  })

  it('moves out on resume a record the caller saw at its cursor and may no longer see, sending nothing of its new state', async () => {
    const rules = { maps: { notes: { read: 'authenticated', write: 'authenticated', filter: { or: [{ eq: ['owner', '$sub'] }, { eq: ['shared', true] }] } } } }
    const r = await relay({ auth: AUTH, rules: rules as never })
    const alice = await connect(r.url, { token: await token('alice') })
    await alice.ops([update(alice.clock, 'notes', 'n1', { owner: 'alice', shared: true, text: 'hello' }), update(alice.clock, 'notes', 'n2', { owner: 'alice', shared: true, text: 'still shared' })])
    const device = await connect(r.url, { token: await token('bob') })
    const first = await subscribe(device, { map: 'notes' })
    expect(first.keys).toEqual(['n1', 'n2'])
    await device.close()

    expect((await alice.ops([update(alice.clock, 'notes', 'n1', { shared: false, text: 'private now' })])).results).toEqual([null])
    const again = await connect(r.url, { token: await token('bob'), replicaId: device.replicaId })
    const before = again.messages.length
    const resumed = await subscribe(again, { map: 'notes' }, { cursor: first.cursor })
    expect(resumed.resume).toBe('cursor')
    expect(resumed.keys).toEqual([])
    expect(resumed.moveOut).toEqual(['n1'])
    expect(JSON.stringify(again.messages.slice(before))).not.toContain('private now')
  })

  it('does not use a cursor issued under other claims (the bound row filter is part of it)', async () => {
    const rules = { maps: { tasks: { read: 'authenticated', write: 'authenticated', filter: { eq: ['team', '$team'] } } } }
    const r = await relay({ auth: AUTH, rules: rules as never })
    const writer = await connect(r.url, { token: await token('rosa', { claims: { team: 'red' } }) })
    await writer.ops([update(writer.clock, 'tasks', 't1', { team: 'red', title: 'plan' })])
    const device = await connect(r.url, { token: await token('rita', { claims: { team: 'red' } }) })
    const first = await subscribe(device, { map: 'tasks' })
    expect(first.keys).toEqual(['t1'])
    await device.close()
    const moved = await connect(r.url, { token: await token('rita', { claims: { team: 'blue' } }), replicaId: device.replicaId })
    const resumed = await subscribe(moved, { map: 'tasks' }, { cursor: first.cursor, root: { path: '', hash: 'ffffffffffffffff', count: 1 } })
    expect(resumed.resume).toBe('merkle')
  })
})

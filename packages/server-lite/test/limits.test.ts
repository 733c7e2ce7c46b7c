/**
 * Frame limits on the relay's side, with raw protocol clients:
 * - a write that would grow a record past what one frame can carry is refused per op
 *   (VALUE_TOO_LARGE), so the record's subscribers never meet a frame they cannot take;
 * - a malformed change is refused alone, its batch commits;
 * - every frame the relay sends fits its limit: slices, reconciliation answers (`nodes`
 *   cut with `more`), and a record stored too large (before limits were checked) is
 *   reported, not sent;
 * - a slice streams paced by the client's credit, and does not hold up the session's other frames;
 * - a slice page is encoded whole and cut only when its frame is over the limits: records of
 *   mixed sizes arrive each once, in the store's order, in frames that fit and are not tiny.
 */
import { MemoryStore, MerkleTree, type ChangesMessage, type LwwRecordState, type MerkleNodeInfo, type WriteRequest } from '@outpost/core'
import { prng, testSeed } from '@outpost/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'
import { LocalShape } from './helpers/replica'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(maxFrameBytes?: number, store?: MemoryStore) {
  const started = await startRelay(maxFrameBytes === undefined ? {} : { limits: { maxFrameBytes } }, store === undefined ? {} : { store })
  cleanups.push(started.stop)
  return started.relay
}

async function connect(url: string, options: Parameters<typeof TestClient.connect>[1] = {}) {
  const { client, welcome } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return { client, welcome }
}

const text = (n: number): string => 'x'.repeat(n)

/** A store write that bypasses the relay's checks: data as an older relay could have left it. */
function plant(map: string, key: string, state: LwwRecordState): WriteRequest {
  return { map, kind: 'lww', key, decide: () => ({ state }) }
}

async function fill(client: TestClient, map: string, count: number, bytes: number): Promise<void> {
  // Batches well under the smallest frame limit the tests use (64 KiB).
  const per = Math.max(1, Math.min(200, Math.floor(40_000 / (bytes + 60))))
  for (let i = 0; i < count; i += per) {
    const ack = await client.ops(Array.from({ length: Math.min(per, count - i) }, (_, j) => update(client.clock, map, `k${String(i + j).padStart(6, '0')}`, { body: text(bytes) })))
    expect(ack.results.every((r) => r === null)).toBe(true)
  }
}

describe('write limits on the relay', () => {
  it('announces its limits in welcome', async () => {
    const r = await relay(256 * 1024)
    const { welcome } = await connect(r.url)
    expect(welcome.limits?.maxFrameBytes).toBe(256 * 1024)
  })

  it('refuses, per op, a write that would grow a record past one frame; subscribers keep syncing', async () => {
    const r = await relay()
    const { client: writer } = await connect(r.url)
    expect((await writer.ops([update(writer.clock, 'docs', 'd', { a: text(700_000) })])).results).toEqual([null])
    const second = await writer.ops([update(writer.clock, 'docs', 'd', { b: text(700_000) }), update(writer.clock, 'docs', 'other', { small: 1 })])
    expect(second.results[0]?.code).toBe('VALUE_TOO_LARGE')
    expect(second.results[0]?.message).toContain('after this write')
    expect(second.results[1]).toBeNull()
    const { client: reader } = await connect(r.url)
    const local = new LocalShape({ map: 'docs' })
    await local.sync(reader)
    expect(Object.keys(local.view('d') ?? {})).toEqual(['a'])
    expect(local.view('other')).toEqual({ small: 1 })
    expect(Math.max(...reader.frameSizes)).toBeLessThanOrEqual(1024 * 1024)
  })

  it('refuses a malformed change alone and commits the rest of its batch', async () => {
    const r = await relay()
    const { client } = await connect(r.url)
    const good = update(client.clock, 'docs', 'ok', { v: 1 })
    client.sendRaw({ type: 'ops', id: 77, changes: [{ kind: 'lww', map: 'docs', key: 7, state: {} }, good] })
    const ack = await client.waitAny((m) => m.type === 'ack' && m.id === 77)
    expect(ack.type === 'ack' && ack.results[0]?.code).toBe('INVALID_MESSAGE')
    expect(ack.type === 'ack' && ack.results[1]).toBeNull()
  })
})

describe('frames the relay sends fit its limit', () => {
  it('reports a stored record too large to send and streams the rest of the slice', async () => {
    const store = new MemoryStore()
    const stamp = '0000000001-0000-old' as never
    // Planted as an older relay could have stored it, before record sizes were checked.
    await store.applyWrites([
      plant('files', 'huge', { fields: [['body', text(200_000), stamp]], deleted: null }),
      ...Array.from({ length: 50 }, (_, i) => plant('files', `f${i}`, { fields: [['body', text(3_000), stamp]], deleted: null })),
    ])
    const r = await relay(64 * 1024, store)
    const { client } = await connect(r.url)
    client.send({ type: 'subscribe', sub: 1, shape: { map: 'files' } })
    const error = await client.waitAny((m) => m.type === 'error' && m.sub === 1)
    expect(error.type === 'error' && error.error.code).toBe('VALUE_TOO_LARGE')
    await client.waitAny((m) => m.type === 'synced' && m.sub === 1)
    const keys = client.all<ChangesMessage>((m) => m.type === 'changes').flatMap((m) => m.changes.map((c) => c.key))
    expect(keys.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `f${i}`).sort())
    expect(Math.max(...client.frameSizes)).toBeLessThanOrEqual(64 * 1024)
    expect(client.all((m) => m.type === 'changes').length).toBeGreaterThan(2)
  })

  it('cuts a large reconcile answer into frames that fit (more), which together list every child', async () => {
    const r = await relay(64 * 1024)
    const { client } = await connect(r.url)
    await fill(client, 'big', 20_000, 8)
    // Every level-3 path of a 20,000-key map, asked at once with made-up hashes.
    const tree = new MerkleTree()
    for (let i = 0; i < 20_000; i++) tree.set(`k${String(i).padStart(6, '0')}`, '0000000000000000')
    const level3 = new Set<string>()
    for (let i = 0; i < 20_000; i++) level3.add(tree.leafPath(`k${String(i).padStart(6, '0')}`).slice(0, 3))
    const asked: MerkleNodeInfo[] = [...level3].slice(0, 1024).map((path) => ({ path, hash: 'ffffffffffffffff', count: 1 }))
    client.send({ type: 'subscribe', sub: 2, shape: { map: 'big' }, root: { path: '', hash: 'ffffffffffffffff', count: 1 } })
    await client.waitAny((m) => m.type === 'subscribed' && m.sub === 2)
    const before = client.messages.length
    client.send({ type: 'reconcile', sub: 2, nodes: asked })
    await client.waitAny((m) => m.type === 'nodes' && m.sub === 2 && m.more !== true)
    const frames = client.messages.slice(before).filter((m) => m.type === 'nodes')
    expect(frames.length).toBeGreaterThan(1)
    expect(frames.slice(0, -1).every((m) => m.type === 'nodes' && m.more === true)).toBe(true)
    const sizes = client.frameSizes.slice(before)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024)
    const children = frames.flatMap((m) => (m.type === 'nodes' ? m.nodes : []))
    const expected = new Set<string>()
    for (let i = 0; i < 20_000; i++) {
      const leaf = tree.leafPath(`k${String(i).padStart(6, '0')}`)
      if (asked.some((n) => n.path === leaf.slice(0, 3))) expected.add(leaf)
    }
    expect(new Set(children.map((n) => n.path))).toEqual(expected)
  })
})

describe('slice frames cut by their encoded size', () => {
  it('sends records of mixed sizes each once, in store order, in frames within the limit and at least a third full', async () => {
    const seed = testSeed('limits: mixed slice')
    const random = prng(seed)
    const store = new MemoryStore()
    const stamp = '0000000001-0000-seed' as never
    // Mostly small records, some of 2-20 KB, one of 50 KB: pages of 2,000 overflow a 64 KiB frame many times over.
    const sizes = Array.from({ length: 3_000 }, (_, i) => (i === 1_234 ? 50_000 : random() < 0.05 ? 2_000 + Math.floor(random() * 18_000) : Math.floor(random() * 300)))
    await store.applyWrites(sizes.map((size, i) => plant('mixed', `m${String(i).padStart(5, '0')}`, { fields: [['body', text(size), stamp]], deleted: null })))
    const order: string[] = []
    for (let after: string | undefined; ; ) {
      const page = await store.scanRecords('mixed', after === undefined ? { limit: 500 } : { after, limit: 500 })
      order.push(...page.map((record) => record.key))
      if (page.length < 500) break
      after = page[page.length - 1]?.key
    }
    const limit = 64 * 1024
    const r = await relay(limit, store)
    const { client } = await connect(r.url)
    client.send({ type: 'subscribe', sub: 1, shape: { map: 'mixed' } })
    await client.waitAny((m) => m.type === 'synced' && m.sub === 1, 30_000)
    const frames = client.messages.map((m, i) => ({ m, bytes: client.frameSizes[i] as number })).filter(({ m }) => m.type === 'changes')
    const keys = frames.flatMap(({ m }) => (m as ChangesMessage).changes.map((c) => c.key))
    expect(keys, `seed ${seed}`).toEqual(order)
    expect(Math.max(...frames.map(({ bytes }) => bytes)), `seed ${seed}`).toBeLessThanOrEqual(limit)
    const total = frames.reduce((sum, { bytes }) => sum + bytes, 0)
    expect(frames.length, `seed ${seed}`).toBeLessThanOrEqual(Math.ceil((3 * total) / limit) + 1)
  })
})

describe('flow control of slices', () => {
  it("sends no more than the client's window ahead of its credit, and finishes once credited", async () => {
    const r = await relay(64 * 1024)
    const { client: writer } = await connect(r.url)
    await fill(writer, 'big', 3_000, 1_000)
    const window = 256 * 1024
    const { client } = await connect(r.url, { window })
    client.send({ type: 'subscribe', sub: 1, shape: { map: 'big' } })
    await client.waitAny((m) => m.type === 'changes')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const pacedBytes = (): number => client.messages.reduce((sum, m, i) => (m.type === 'changes' && m.paced === true ? sum + (client.frameSizes[i] as number) : sum), 0)
    // Without credit the relay stops within one frame past the window.
    expect(pacedBytes()).toBeLessThanOrEqual(window + 64 * 1024)
    expect(client.messages.some((m) => m.type === 'synced')).toBe(false)

    // Other frames of the session are answered while the slice waits.
    const ack = await client.ops([update(client.clock, 'other', 'x', { v: 1 })])
    expect(ack.results).toEqual([null])

    // Credit what arrives; the slice completes with every record.
    let credited = 0
    const pay = (): void => {
      const owed = pacedBytes() - credited
      if (owed > 0) {
        client.send({ type: 'credit', bytes: owed })
        credited += owed
      }
    }
    const timer = setInterval(pay, 10)
    try {
      await client.waitAny((m) => m.type === 'synced' && m.sub === 1, 30_000)
    } finally {
      clearInterval(timer)
    }
    const keys = new Set(client.all<ChangesMessage>((m) => m.type === 'changes').flatMap((m) => m.changes.map((c) => c.key)))
    expect(keys.size).toBe(3_000)
  })
})

describe('a slice beyond what one send buffer holds', () => {
  it('streams 200,000 records (about 80 MB) to a crediting client with the relay send buffer bounded', async () => {
    const store = new MemoryStore()
    const N = 200_000
    const stamp = '0000000001-0000-seed' as never
    for (let i = 0; i < N; i += 20_000) {
      await store.applyWrites(Array.from({ length: 20_000 }, (_, j) => plant('big', `k${String(i + j).padStart(7, '0')}`, { fields: [['body', text(380), stamp]], deleted: null })))
    }
    const r = await relay(undefined, store)
    const { client } = await connect(r.url, { window: 4 * 1024 * 1024 })
    let credited = 0
    let peakUnpaid = 0
    let received = 0
    client.ws.on('message', (data: Buffer) => {
      received += data.length
      peakUnpaid = Math.max(peakUnpaid, received - credited)
    })
    const started = Date.now()
    client.send({ type: 'subscribe', sub: 1, shape: { map: 'big' } })
    const timer = setInterval(() => {
      const owed = client.messages.reduce((sum, m, i) => (m.type === 'changes' && m.paced === true ? sum + (client.frameSizes[i] as number) : sum), 0) - credited
      if (owed > 0) {
        client.send({ type: 'credit', bytes: owed })
        credited += owed
      }
    }, 5)
    try {
      await client.waitAny((m) => m.type === 'synced' && m.sub === 1, 120_000)
    } finally {
      clearInterval(timer)
    }
    const records = client.all<ChangesMessage>((m) => m.type === 'changes').reduce((sum, m) => sum + m.changes.length, 0)
    console.log(`[figure] slice of ${N} records, ${(client.bytesReceived / 1024 / 1024).toFixed(1)} MiB in ${client.messages.length} frames, ${Date.now() - started} ms; peak unpaid ${(peakUnpaid / 1024 / 1024).toFixed(2)} MiB`)
    expect(records).toBe(N)
    // Never more than the window (plus one frame) ahead of the client's credit.
    expect(peakUnpaid).toBeLessThanOrEqual(4 * 1024 * 1024 + 1024 * 1024 + 64 * 1024)
  }, 180_000)
})

/**
 * Wire versions side by side: a v1-only client (an old deploy) and a v2 client share one
 * relay. Each is answered in its own version (the v1 client reads strictly in v1, so one
 * packed frame would fail it), every write reaches the other, and both converge.
 */
import { decode, lwwEquals, type Change, type ChangesMessage, type ReplicaId, type Value } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { valueDifference } from '@outpost/core/testing'
import { TestClient, startRelay } from './helpers/client'
import { remove, set, update } from './helpers/changes'
import { LocalShape } from './helpers/replica'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Counts the `changes` frames `client` receives by form: a packed batch (v2) or a list (v1). */
function frameForms(client: TestClient): { packed: number; list: number } {
  const forms = { packed: 0, list: 0 }
  client.ws.on('message', (data: Buffer) => {
    const raw = decode(new Uint8Array(data.buffer, data.byteOffset, data.length)) as Record<string, unknown>
    if (raw['type'] !== 'changes') return
    if (Object.hasOwn(raw, 'batch')) forms.packed++
    else if ((raw['changes'] as unknown[]).length > 0) forms.list++
  })
  return forms
}

/** A record with every kind of value and awkward field names. */
function record(i: number, who: string): Record<string, Value> {
  const fields: Record<string, Value> = { title: `${who} ${i}`, n: i, big: BigInt(i) * 10n ** 20n, at: new Date(1_700_000_000_000 + i), bytes: Uint8Array.of(i % 256), nested: { list: [i, null, true] } }
  Object.defineProperty(fields, '__proto__', { value: `proto ${i}`, enumerable: true, writable: true, configurable: true })
  fields[''] = i % 2 === 0
  return fields
}

describe('a v1-only client and a v2 client on one relay', () => {
  it('are each answered in their own version and converge', async () => {
    const { relay, stop } = await startRelay()
    cleanups.push(stop)
    const { client: old, welcome: oldWelcome } = await TestClient.connect(relay.url, { versions: [1] })
    const { client: current, welcome: currentWelcome } = await TestClient.connect(relay.url, { versions: [1, 2] })
    cleanups.push(() => old.close(), () => current.close())
    expect([oldWelcome.version, currentWelcome.version]).toEqual([1, 2])
    const oldForms = frameForms(old)
    const currentForms = frameForms(current)

    // Writes from both, before either subscribes: sets, updates of the other's records, deletes, an OR set and a counter.
    const writes = async (client: TestClient, who: string, other: string): Promise<void> => {
      const changes: Change[] = []
      for (let i = 0; i < 40; i++) changes.push(set(client.clock, 'todos', `${who}-${i}`, record(i, who)))
      for (let i = 0; i < 10; i++) changes.push(update(client.clock, 'todos', `${other}-${i}`, { title: `${who} was here` }))
      changes.push(remove(client.clock, 'todos', `${who}-39`), set(client.clock, 'todos', '__proto__', { by: who }))
      changes.push({ kind: 'or', map: 'tags', key: 't', state: { adds: [[client.clock.tick(), who]], removes: [] } })
      changes.push({ kind: 'counter', map: 'likes', key: '', state: [[client.replicaId as ReplicaId, 3, 1]] })
      const ack = await client.ops(changes)
      expect(ack.results.every((result) => result === null)).toBe(true)
    }
    await writes(old, 'old', 'current')
    await writes(current, 'current', 'old')

    // Initial slices, each in its own version.
    const oldTodos = new LocalShape({ map: 'todos' })
    const currentTodos = new LocalShape({ map: 'todos' })
    await oldTodos.sync(old)
    await currentTodos.sync(current)
    expect(oldTodos.states.size).toBe(81)

    // Live fan-out, each in its own version.
    old.skipAll()
    current.skipAll()
    const live = (client: TestClient, who: string): Change[] => [set(client.clock, 'todos', `${who}-live`, record(99, who)), update(client.clock, 'todos', 'old-0', { [who]: true })]
    const oldLive = live(old, 'old')
    const currentLive = live(current, 'current')
    await old.ops(oldLive)
    await current.ops(currentLive)
    const fanOut = async (client: TestClient, shape: LocalShape, key: string): Promise<void> => {
      const message = (await client.next((m) => m.type === 'changes' && m.sub === shape.sub && m.changes.some((c) => c.key === key))) as ChangesMessage
      shape.absorb(message)
    }
    await fanOut(old, oldTodos, 'current-live')
    await fanOut(current, currentTodos, 'old-live')
    // Each also merges its own live writes, as a client does locally.
    for (const [shape, changes] of [[oldTodos, oldLive], [currentTodos, currentLive]] as const) {
      for (const change of changes) if (change.kind === 'lww') shape.apply(change.key, change.state)
    }

    // Converged: the same states, views and Merkle roots, and the relay's root as a fresh v2 subscriber sees it.
    const keys = [...oldTodos.states.keys()].sort()
    expect([...currentTodos.states.keys()].sort()).toEqual(keys)
    for (const key of keys) {
      expect(lwwEquals(oldTodos.states.get(key)!, currentTodos.states.get(key)!), key).toBe(true)
      expect(valueDifference(currentTodos.view(key), oldTodos.view(key))).toBeNull()
    }
    expect(oldTodos.view('old-3')?.['title']).toBe('current was here')
    // Concurrent updates of different fields, one from each version, both survive.
    expect([oldTodos.view('old-0')?.['old'], oldTodos.view('old-0')?.['current']]).toEqual([true, true])
    expect(oldTodos.view('old-39')).toBeUndefined()
    expect(oldTodos.view('__proto__')).toBeDefined()
    expect(oldTodos.tree.root().hash).toBe(currentTodos.tree.root().hash)
    const { client: late } = await TestClient.connect(relay.url)
    cleanups.push(() => late.close())
    const lateTodos = new LocalShape({ map: 'todos' })
    await lateTodos.sync(late)
    expect(lateTodos.tree.root().hash).toBe(oldTodos.tree.root().hash)

    // The OR set and the counter read the same in both versions.
    const slice = async (client: TestClient, map: string, sub: number): Promise<Change[]> => {
      client.skipAll()
      client.send({ type: 'subscribe', sub, shape: { map } })
      const changes: Change[] = []
      for (;;) {
        const message = await client.next((m) => 'sub' in m && m.sub === sub && (m.type === 'changes' || m.type === 'synced'))
        if (message.type === 'synced') return changes
        if (message.type === 'changes') changes.push(...message.changes)
      }
    }
    for (const [map, sub] of [['tags', 900], ['likes', 901]] as const) {
      const inV1 = await slice(old, map, sub)
      expect(inV1).toHaveLength(1)
      expect(valueDifference(await slice(current, map, sub), inV1)).toBeNull()
    }

    // Every non-empty change list the v1 client received was a list; every one the v2 client received was packed.
    expect(oldForms.packed).toBe(0)
    expect(oldForms.list).toBeGreaterThan(0)
    expect(currentForms.list).toBe(0)
    expect(currentForms.packed).toBeGreaterThan(0)
  })
})

/**
 * Server-side functions through a real relay and real sockets: entry processors are
 * atomic per key (50 concurrent decrements from 5 clients leave exactly start - 50, every
 * caller gets its own result, concurrent ops on other fields survive), a throwing
 * processor changes nothing anywhere, an unknown one is NOT_FOUND, a conflict resolver's
 * merged record reaches both writers, a functions module is loaded from `config.functions`,
 * and PN counters converge to the exact sum under duplicated outbox replays.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { counterValue, valuesEqual, type ChangesMessage, type CounterState, type RecordValue, type ReplicaId, type Value } from '@outpost/core'
import type { RelayFunctions } from '../src/index'
import { TestClient, startRelay, tempDir } from './helpers/client'
import { set, update } from './helpers/changes'
import { expectType, invoke, sleep } from './helpers/primitives'
import { LocalShape } from './helpers/replica'

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const functions: RelayFunctions = {
  processors: {
    async decrement({ value, args }) {
      const stock = typeof value?.['stock'] === 'number' ? value['stock'] : 0
      const by = typeof args === 'number' ? args : 1
      // Yields, so a non-atomic relay would interleave invocations here.
      await sleep(Math.random() * 2)
      if (stock - by < 0) throw new Error('out of stock')
      return { value: { ...value, stock: stock - by }, result: stock - by }
    },
    explode({ value }) {
      // Mutating the given copy must not leak into the relay's state.
      if (value !== undefined) (value as Record<string, Value>)['stock'] = -1
      throw new Error('explosive processor')
    },
    remove: () => ({ value: null, result: 'gone' }),
  },
  resolvers: {
    // Tags are a set: a concurrent write adds its tags instead of replacing them.
    docs: ({ current, incoming }) => {
      const tags = new Set([...((current.value['tags'] as string[] | undefined) ?? []), ...((incoming.value['tags'] as string[] | undefined) ?? [])])
      return { ...current.value, tags: [...tags].sort() }
    },
  },
}

/** A relay with `fns` as its functions (`null`: none given programmatically). */
async function relay(config: Parameters<typeof startRelay>[0] = {}, fns: RelayFunctions | null = functions): Promise<string> {
  const started = await startRelay(config, fns === null ? {} : { functions: fns })
  cleanups.push(started.stop)
  return started.relay.url
}

async function connect(url: string, options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
  const { client } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return client
}

/** A subscriber of `map` kept up to date with live changes. */
async function follow(client: TestClient, map: string): Promise<{ shape: LocalShape; view: (key: string) => RecordValue | undefined }> {
  const shape = new LocalShape({ map })
  await shape.sync(client, false)
  let cursor = client.messages.length
  const pump = (): void => {
    for (; cursor < client.messages.length; cursor++) {
      const m = client.messages[cursor]
      if (m?.type === 'changes' && m.sub === shape.sub) shape.absorb(m as ChangesMessage)
    }
  }
  return {
    shape,
    view: (key) => {
      pump()
      return shape.view(key)
    },
  }
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await sleep(10)
  }
}

describe('entry processors', () => {
  it('run atomically per key: 50 concurrent decrements from 5 clients leave exactly start - 50', async () => {
    const url = await relay()
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect(url)))
    const owner = clients[0] as TestClient
    await owner.ops([set(owner.clock, 'items', 'widget', { name: 'widget', stock: 100 })])
    const watcher = await follow(await connect(url), 'items')

    const results = await Promise.all(
      clients.flatMap((client, c) =>
        Array.from({ length: 10 }, async (_, i) => {
          // Plain writes to another field of the same record, interleaved with the invocations.
          if (i === 5) await client.ops([update(client.clock, 'items', 'widget', { [`note${c}`]: `from ${c}` })])
          return expectType(await invoke(client, 'items', 'widget', 'decrement', 1), 'invoke-result').result as number
        }),
      ),
    )
    expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 50 + i))
    await until(() => watcher.view('widget')?.['stock'] === 50)
    const record = watcher.view('widget') as RecordValue
    expect(record).toMatchObject({ name: 'widget', stock: 50, note0: 'from 0', note1: 'from 1', note2: 'from 2', note3: 'from 3', note4: 'from 4' })

    // The relay's write is durable and what a fresh subscriber sees.
    const fresh = await follow(await connect(url), 'items')
    expect(fresh.view('widget')).toEqual(record)
  })

  it('change nothing when the processor throws, and report PROCESSOR_FAILED or NOT_FOUND', async () => {
    const url = await relay()
    const [writer, other] = await Promise.all([connect(url), connect(url)])
    await writer.ops([set(writer.clock, 'items', 'bomb', { stock: 7 })])
    const watcher = await follow(other, 'items')
    expect(watcher.view('bomb')).toEqual({ stock: 7 })
    const framesBefore = other.all((m) => m.type === 'changes').length

    const failed = await invoke(writer, 'items', 'bomb', 'explode', null)
    expect(failed).toMatchObject({ type: 'error', error: { code: 'PROCESSOR_FAILED' } })
    expect(failed.type === 'error' && failed.error.message).toContain('explosive processor')
    const missing = await invoke(writer, 'items', 'bomb', 'no-such-processor', null)
    expect(missing).toMatchObject({ type: 'error', error: { code: 'NOT_FOUND' } })
    const refused = await invoke(writer, 'items', 'bomb', 'decrement', 100)
    expect(refused).toMatchObject({ type: 'error', error: { code: 'PROCESSOR_FAILED', message: expect.stringContaining('out of stock') } })

    await sleep(150)
    expect(other.all((m) => m.type === 'changes').length).toBe(framesBefore)
    expect((await follow(await connect(url), 'items')).view('bomb')).toEqual({ stock: 7 })
    // The key is not stuck: a good invocation still runs.
    expect(await invoke(writer, 'items', 'bomb', 'decrement', 2)).toMatchObject({ type: 'invoke-result', result: 5 })
    expect(await invoke(writer, 'items', 'bomb', 'remove', null)).toMatchObject({ type: 'invoke-result', result: 'gone' })
    await until(() => watcher.view('bomb') === undefined)
  })

  it('follow the map rules: no write access, no invocation', async () => {
    const url = await relay({ rules: { maps: { items: { read: 'public', write: 'none' } } } })
    const client = await connect(url)
    expect(await invoke(client, 'items', 'x', 'decrement', 1)).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } })
    expect(await invoke(client, 'secret', 'x', 'decrement', 1)).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } })
  })

  it('load from a functions module named in the config', async () => {
    const dir = tempDir()
    cleanups.push(dir.remove)
    const path = join(dir.path, 'functions.ts')
    writeFileSync(
      path,
      `type Ctx = { value: { n?: number } | undefined; args: unknown }
export const processors = {
  bump: ({ value, args }: Ctx) => ({ value: { n: (value?.n ?? 0) + (args as number) }, result: 'bumped' }),
}
`,
    )
    const url = await relay({ functions: path }, null)
    const client = await connect(url)
    expect(await invoke(client, 'counters', 'a', 'bump', 3)).toMatchObject({ type: 'invoke-result', result: 'bumped' })
    expect(await invoke(client, 'counters', 'a', 'bump', 4)).toMatchObject({ type: 'invoke-result', result: 'bumped' })
    expect((await follow(client, 'counters')).view('a')).toEqual({ n: 7 })
  })
})

describe('conflict resolvers', () => {
  it('merge a write that lost to a concurrent one, and both writers converge to the merged record', async () => {
    const url = await relay()
    const alice = await connect(url)
    // Bob's clock runs 5 s behind: his edit is "older" than Alice's, and he had not seen hers.
    const bob = await connect(url, { now: () => Date.now() - 5_000 })
    const a = await follow(alice, 'docs')
    const b = await follow(bob, 'docs')
    const base = set(alice.clock, 'docs', 'd1', { title: 'Plan', tags: ['draft'] })
    await alice.ops([base])
    a.shape.apply('d1', base.state)
    await until(() => b.view('d1') !== undefined)

    const aliceEdit = update(alice.clock, 'docs', 'd1', { tags: ['draft', 'urgent'] })
    a.shape.apply('d1', aliceEdit.state)
    await alice.ops([aliceEdit])
    const bobEdit = update(bob.clock, 'docs', 'd1', { tags: ['draft', 'reviewed'] })
    b.shape.apply('d1', bobEdit.state)
    await bob.ops([bobEdit])

    const merged = { title: 'Plan', tags: ['draft', 'reviewed', 'urgent'] }
    const converged = (view: RecordValue | undefined): boolean => view !== undefined && valuesEqual(view, merged)
    await until(() => converged(a.view('d1')) && converged(b.view('d1'))).catch((error: unknown) => {
      throw new Error(`${String(error)}: alice sees ${JSON.stringify(a.view('d1'))}, bob sees ${JSON.stringify(b.view('d1'))}`)
    })
    expect((await follow(await connect(url), 'docs')).view('d1')).toEqual(merged)
  })

  it('leave ordinary newer writes to last-writer-wins, and fall back to it when the resolver throws', async () => {
    const url = await relay({}, {
      resolvers: {
        docs: ({ incoming }) => {
          if (incoming.value['boom'] === true) throw new Error('resolver bug')
          return { resolved: true }
        },
      },
    })
    const alice = await connect(url)
    const bob = await connect(url, { now: () => Date.now() - 5_000 })
    await alice.ops([update(alice.clock, 'docs', 'd1', { title: 'A' })])
    // Newer than the relay's: a plain overwrite, the resolver is not asked.
    await alice.ops([update(alice.clock, 'docs', 'd1', { title: 'B' })])
    // Older and different, but the resolver throws: plain LWW keeps "B".
    await bob.ops([update(bob.clock, 'docs', 'd1', { title: 'C', boom: true })])
    const view = (await follow(await connect(url), 'docs')).view('d1')
    expect(view).toEqual({ title: 'B', boom: true })
  })
})

describe('counters', () => {
  it('converge to the exact sum when clients replay their outbox (duplicates and stale states)', async () => {
    const url = await relay({}, null)
    const clients = await Promise.all(Array.from({ length: 4 }, () => connect(url)))
    let expected = 0
    await Promise.all(
      clients.map(async (client, c) => {
        let inc = 0
        let dec = 0
        const history: CounterState[] = []
        for (let i = 0; i < 25; i++) {
          if ((i + c) % 4 === 0) dec += 2
          else inc += 3
          const state: CounterState = [[client.replicaId as ReplicaId, inc, dec]]
          history.push(state)
          const change = { kind: 'counter' as const, map: 'visits', key: '', state }
          // Every op sent twice, plus a replay of an older state now and then.
          await client.ops([change, change])
          if (i % 5 === 4) await client.ops([{ kind: 'counter', map: 'visits', key: '', state: history[i - 3] as CounterState }])
        }
        expected += inc - dec
      }),
    )
    const reader = await connect(url)
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'visits' } })
    await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
    const states = reader.all<ChangesMessage>((m) => m.type === 'changes' && m.sub === 1).flatMap((m) => m.changes)
    expect(states).toHaveLength(1)
    const total = counterValue((states[0] as { state: CounterState }).state)
    expect(total).toBe(expected)
  })
})

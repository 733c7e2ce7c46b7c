/**
 * The client talking to an engine across a real `MessageChannel` through comlink, the way
 * a tab talks to the SharedWorker: typed errors keep their class and `code`, callbacks
 * flow back, a dead engine gives `TimeoutError` instead of a hang, and the client
 * reconnects and re-makes its live queries.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createEngine, exposeEngine, type Engine } from '@outpost/worker'
import {
  InvalidKeyError,
  OutpostError,
  PredicateError,
  TimeoutError,
  createClient,
  type OutpostClient,
  type Row,
} from '../src/index'
import { freshDb, waitFor } from './helpers'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** An engine served on one end of a fresh MessageChannel per connection, like a SharedWorker serving tabs. */
function serveEngine(): { connect: () => MessagePort; connections: () => number; crash: () => Promise<void>; engine: () => Engine } {
  const db = freshDb('bridge')
  const start = (): Engine => createEngine({ name: db.name, mode: 'shared-worker', indexedDB: db.indexedDB })
  let engine = start()
  const ports: MessagePort[] = []
  let connections = 0
  cleanups.push(async () => {
    for (const port of ports) port.close()
    await engine.close()
  })
  return {
    connect: () => {
      const channel = new MessageChannel()
      exposeEngine(engine, channel.port1)
      ports.push(channel.port1, channel.port2)
      connections++
      return channel.port2
    },
    connections: () => connections,
    /** The worker dies (ports go silent, the engine stops) and the browser would start a new one on the same IndexedDB. */
    crash: async () => {
      for (const port of ports.splice(0)) port.close()
      await engine.close()
      engine = start()
    },
    engine: () => engine,
  }
}

function track(client: OutpostClient): OutpostClient {
  cleanups.push(() => client.close())
  return client
}

describe('client ⇄ engine over MessageChannel + comlink', () => {
  it('writes, reads and queries across the boundary', async () => {
    const server = serveEngine()
    const client = track(createClient({ name: 'bridge', connect: server.connect }))
    expect(client.mode).toBe('shared-worker')
    const todos = client.map<{ title: string }>('todos')
    const q = todos.query({ orderBy: [['title', 'asc']] })
    const unsubscribe = q.subscribe(() => {})
    await todos.set('b', { title: 'beta' })
    await todos.set('a', { title: 'alpha' })
    const rows = await waitFor(q, (r) => r.length === 2)
    expect(rows.map((row: Row<{ title: string }>) => row.value.title)).toEqual(['alpha', 'beta'])
    expect(await todos.get('a')).toEqual({ title: 'alpha' })
    unsubscribe()
  })

  it('rebuilds typed errors with their class and code', async () => {
    const server = serveEngine()
    const client = track(createClient({ name: 'bridge', connect: server.connect }))
    const map = client.map('m')

    const keyError = await map.set('k'.repeat(2000), { a: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(keyError).toBeInstanceOf(InvalidKeyError)
    expect(keyError).toBeInstanceOf(OutpostError)
    expect((keyError as InvalidKeyError).code).toBe('INVALID_KEY')

    const queryError = await new Promise<unknown>((resolve) => {
      map.query({ where: { eq: ['a'] } as never }).subscribe(() => resolve(undefined), resolve)
    })
    expect(queryError).toBeInstanceOf(PredicateError)
    expect((queryError as PredicateError).code).toBe('INVALID_PREDICATE')
  })

  it('a call into a dead engine fails with TimeoutError instead of hanging', async () => {
    // Nobody serves the other end of this channel: the engine "died".
    const dead = new MessageChannel()
    cleanups.push(() => {
      dead.port1.close()
      dead.port2.close()
    })
    const client = track(createClient({ name: 'dead', connect: () => dead.port2, timeoutMs: 200 }))
    const started = Date.now()
    const error = await client.map('m').get('k').then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).code).toBe('TIMEOUT')
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('reconnects after a timeout and re-makes live queries', async () => {
    const server = serveEngine()
    let first = true
    const dead = new MessageChannel()
    cleanups.push(() => {
      dead.port1.close()
      dead.port2.close()
    })
    const client = track(
      createClient({
        name: 'restart',
        timeoutMs: 300,
        connect: () => {
          if (!first) return server.connect()
          first = false
          return dead.port2
        },
      }),
    )
    const todos = client.map<{ title: string }>('todos')
    const q = todos.query()
    const seen: number[] = []
    const unsubscribe = q.subscribe((rows) => seen.push(rows.length))
    // The first call times out against the dead port; the client then connects to the live engine.
    await expect(todos.get('x')).rejects.toBeInstanceOf(TimeoutError)
    await todos.set('x', { title: 'after restart' })
    const rows = await waitFor(q, (r) => r.length === 1)
    expect(rows[0]?.value.title).toBe('after restart')
    expect(server.connections()).toBe(1)
    unsubscribe()
  })

  it('notices a dead engine while only listening, reconnects and resumes the live query', async () => {
    const server = serveEngine()
    const client = track(createClient({ name: 'heartbeat', connect: server.connect, timeoutMs: 200, heartbeatMs: 100 }))
    const q = client.map<{ title: string }>('todos').query()
    const unsubscribe = q.subscribe(() => {})
    await waitFor(q, (rows) => rows.length === 0)
    await server.crash()
    // Written into the restarted engine; the tab only sees it if it noticed the crash and re-subscribed there.
    await server.engine().set('todos', 'k', { title: 'written after the crash' })
    const rows = await waitFor(q, (r) => r.length === 1, 5000)
    expect(rows[0]?.value.title).toBe('written after the crash')
    expect(server.connections()).toBe(2)
    unsubscribe()
  })
})

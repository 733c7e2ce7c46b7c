/**
 * The SDK against the real relay (server-lite on 127.0.0.1, port 0) with in-page engines
 * on fake-indexeddb and `ws` sockets: write handles reach 'persisted', edits travel
 * between clients, shapes replicate only their slice, offline writes go out on reconnect.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createRelay, type Relay } from '@outpost/server-lite'
import { createClient, type ClientStatus, type OutpostClient } from '../src/index'
import { freshDb, until, waitFor } from './helpers'

interface Todo {
  title: string
  done: boolean
  owner?: string
}

let relay: Relay
let dataDir: string
const clients: OutpostClient[] = []

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'outpost-client-relay-'))
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent' })
})

afterAll(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()))
  await relay?.close()
  await rm(dataDir, { recursive: true, force: true })
})

function open(options: { offline?: boolean } = {}): OutpostClient {
  const db = freshDb('relay')
  const client = createClient({
    name: db.name,
    url: relay.url,
    mode: 'in-page',
    offline: options.offline ?? false,
    engine: { indexedDB: db.indexedDB, WebSocket: WebSocket as never },
  })
  clients.push(client)
  return client
}

function statusWhere(client: OutpostClient, accept: (status: ClientStatus) => boolean, timeoutMs = 10_000): Promise<ClientStatus> {
  return waitFor(
    {
      subscribe: (listener) => {
        queueMicrotask(() => listener(client.status.get()))
        return client.status.subscribe(listener)
      },
      getSnapshot: () => client.status.get(),
      // The status feed never fails.
      getError: () => undefined,
      get: async () => client.status.get(),
    },
    accept,
    timeoutMs,
  )
}

describe('client ⇄ relay', () => {
  it('a write handle goes local → persisted, and another client sees the edit', async () => {
    const a = open()
    const b = open()
    a.sync('todos')
    b.sync('todos')
    const aTodos = a.map<Todo>('todos')
    const bTodos = b.map<Todo>('todos')
    const bRows = bTodos.query({ orderBy: [['title', 'asc']] })
    const stop = bRows.subscribe(() => {})

    const progress: string[] = []
    const handle = aTodos.set('t1', { title: 'Buy milk', done: false })
    handle.onProgress((concern) => progress.push(concern))
    await handle
    await handle.persisted
    expect(handle.concern).toBe('persisted')
    expect(progress.at(-1)).toBe('persisted')
    expect(progress.indexOf('local')).toBeLessThan(progress.indexOf('persisted'))

    const rows = await waitFor(bRows, (r) => r.length === 1, 10_000)
    expect(rows[0]).toEqual({ key: 't1', value: { title: 'Buy milk', done: false } })

    await bTodos.update('t1', { done: true }).persisted
    await until(async () => (await aTodos.get('t1'))?.done === true, 10_000, 'the update to reach a')
    const status = await statusWhere(a, (s) => s.online && s.pendingWrites === 0)
    expect(status).toMatchObject({ mode: 'in-page', connection: 'live', durable: true })
    expect(status.lastSyncAt).not.toBeNull()
    stop()
  })

  it('a shape replicates only its slice and fields', async () => {
    const writer = open()
    const reader = open()
    const w = writer.map<Todo>('tasks')
    await w.set('mine', { title: 'mine', done: false, owner: 'me' })
    await w.set('theirs', { title: 'theirs', done: false, owner: 'them' })
    await w.set('mine', { title: 'mine', done: false, owner: 'me' }).persisted
    await w.set('theirs', { title: 'theirs', done: false, owner: 'them' }).persisted

    const shape = reader.shape({ map: 'tasks', where: { eq: ['owner', 'me'] }, fields: ['title', 'done'] })
    expect(typeof (await shape.id)).toBe('string')
    const rows = reader.map<Todo>('tasks').query()
    const got = await waitFor(rows, (r) => r.length >= 1, 10_000)
    expect(got).toEqual([{ key: 'mine', value: { title: 'mine', done: false } }])
    await shape.close()
  })

  it('writes made offline are kept, counted as pending, and persisted after going online', async () => {
    const client = open({ offline: true })
    const other = open()
    other.sync('notes')
    const notes = client.map<{ text: string }>('notes')
    const handles = []
    for (let i = 0; i < 50; i++) handles.push(notes.set(`n${i}`, { text: `note ${i}` }))
    await Promise.all(handles)
    expect(handles.every((h) => h.concern === 'local')).toBe(true)
    const offline = await statusWhere(client, (s) => s.pendingWrites === 50)
    expect(offline.online).toBe(false)
    expect(offline.oldestPendingMs).not.toBeNull()

    await client.setOffline(false)
    await Promise.all(handles.map((h) => h.persisted))
    await statusWhere(client, (s) => s.online && s.pendingWrites === 0)
    const seen = await waitFor(other.map('notes').query(), (r) => r.length === 50, 10_000)
    expect(seen).toHaveLength(50)
  })

  it('counters converge across clients', async () => {
    const a = open()
    const b = open()
    a.sync('hits')
    b.sync('hits')
    await a.counter('hits').increment(2).persisted
    await b.counter('hits').increment(3).persisted
    expect(await waitFor(a.counter('hits'), (v) => v === 5, 10_000)).toBe(5)
    expect(await waitFor(b.counter('hits'), (v) => v === 5, 10_000)).toBe(5)
  })
})

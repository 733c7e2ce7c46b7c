/**
 * The SDK end to end in in-page mode (the engine runs in this realm, on fake-indexeddb):
 * what an app sees when it writes, reads, queries, counts and validates.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { SchemaValidationError, InvalidValueError, createClient, type OutpostClient } from '../src/index'
import { freshDb, waitFor } from './helpers'

interface Todo {
  title: string
  done: boolean
  owner?: string
}

const clients: OutpostClient[] = []
function open(db = freshDb()): OutpostClient {
  const client = createClient({ name: db.name, mode: 'in-page', engine: { indexedDB: db.indexedDB } })
  clients.push(client)
  return client
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()))
})

describe('in-page client', () => {
  it('writes, reads, updates single fields and deletes', async () => {
    const client = open()
    const todos = client.map<Todo>('todos')
    const handle = todos.set('t1', { title: 'Buy milk', done: false })
    await handle
    expect(handle.concern).toBe('local')
    expect(await todos.get('t1')).toEqual({ title: 'Buy milk', done: false })
    await todos.update('t1', { done: true })
    expect(await todos.get('t1')).toEqual({ title: 'Buy milk', done: true })
    await todos.delete('t1')
    expect(await todos.get('t1')).toBeUndefined()
  })

  it('keeps odd keys and field names as ordinary data', async () => {
    const client = open()
    const map = client.map('odd')
    await map.set('__proto__', { constructor: 1, '': 'empty' })
    expect(await map.get('__proto__')).toEqual({ constructor: 1, '': 'empty' })
    expect(await map.get('constructor')).toBeUndefined()
  })

  it('live queries see the tab’s own writes at once, filtered, ordered and limited', async () => {
    const client = open()
    const todos = client.map<Todo>('todos')
    const q = todos.query({ where: { eq: ['done', false] }, orderBy: [['title', 'asc']], limit: 2 })
    expect(todos.query({ limit: 2, orderBy: [['title', 'asc']], where: { eq: ['done', false] } })).toBe(q)
    const seen: string[][] = []
    const unsubscribe = q.subscribe((rows) => seen.push(rows.map((row) => row.value.title)))
    await todos.set('a', { title: 'cherry', done: false })
    await todos.set('b', { title: 'apple', done: false })
    await todos.set('c', { title: 'banana', done: true })
    await todos.set('d', { title: 'banana', done: false })
    const rows = await waitFor(q, (r) => r.length === 2 && r[1]?.value.title === 'banana')
    expect(rows.map((row) => row.key)).toEqual(['b', 'd'])
    await todos.update('b', { done: true })
    const after = await waitFor(q, (r) => r[0]?.key === 'd')
    expect(after.map((row) => row.value.title)).toEqual(['banana', 'cherry'])
    unsubscribe()
    // The engine's first rows (empty) came while the first write was pending: the tab showed it on top.
    expect(seen[0]).toEqual(['cherry'])
    expect(q.getSnapshot()).toBeUndefined()
  })

  it('a record subscription follows one key through set, update and delete', async () => {
    const client = open()
    const todos = client.map<Todo>('todos')
    const record = todos.record('t1')
    const values: (Todo | undefined)[] = []
    const unsubscribe = record.subscribe((value) => values.push(value))
    await waitFor(record, (v) => v === undefined)
    await todos.set('t1', { title: 'x', done: false })
    await waitFor(record, (v) => v?.title === 'x')
    await todos.delete('t1')
    await waitFor(record, (v) => v === undefined)
    unsubscribe()
    expect(values.at(-1)).toBeUndefined()
    expect(values.some((v) => v?.title === 'x')).toBe(true)
  })

  it('rejects a write that fails the zod schema before anything is stored', async () => {
    const client = open()
    const schema = z.object({ title: z.string().min(1), done: z.boolean().default(false) })
    const todos = client.map('todos', { schema })
    const rows = todos.query()
    const unsubscribe = rows.subscribe(() => {})

    const error = await todos.set('bad', { title: '' }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(SchemaValidationError)
    expect((error as SchemaValidationError).code).toBe('SCHEMA_VALIDATION')
    expect((error as SchemaValidationError).details?.['issues']).toEqual([expect.objectContaining({ path: ['title'] })])
    expect(await todos.get('bad')).toBeUndefined()

    // The schema's output is what is stored (the default filled in).
    await todos.set('good', { title: 'ok' })
    expect(await todos.get('good')).toEqual({ title: 'ok', done: false })
    // A patch is validated as the record it would produce.
    await expect(todos.update('good', { title: '' })).rejects.toBeInstanceOf(SchemaValidationError)
    expect(await todos.get('good')).toEqual({ title: 'ok', done: false })
    const final = await waitFor(rows, (r) => r.length === 1)
    expect(final.map((row) => row.key)).toEqual(['good'])
    unsubscribe()
  })

  it('rejects values Outpost cannot store with a typed error', async () => {
    const client = open()
    const map = client.map('m')
    await expect(map.set('k', { f: () => 1 } as never)).rejects.toBeInstanceOf(InvalidValueError)
    expect(await map.get('k')).toBeUndefined()
  })

  it('counts and keeps add-wins sets', async () => {
    const client = open()
    const likes = client.counter('likes:7')
    expect(client.counter('likes:7')).toBe(likes)
    await likes.increment()
    await likes.increment(5)
    await likes.decrement(2)
    expect(await waitFor(likes, (v) => v === 4)).toBe(4)

    const tags = client.orMap<string>('tags')
    await tags.add('t1', 'red')
    await tags.add('t1', 'blue')
    await tags.remove('t1', 'red')
    expect(await waitFor(tags.values('t1'), (v) => v.length === 1)).toEqual(['blue'])
  })

  it('reports its mode and durability in status, and keeps data across restarts', async () => {
    const db = freshDb()
    const first = open(db)
    await first.ready()
    const status = await new Promise<ReturnType<typeof first.status.get>>((resolve) => {
      if (first.status.get().durable) resolve(first.status.get())
      const off = first.status.subscribe((s) => {
        if (s.durable) {
          off()
          resolve(s)
        }
      })
    })
    expect(status).toMatchObject({ mode: 'in-page', durable: true, online: false })
    await first.map<Todo>('todos').set('t1', { title: 'kept', done: false })
    await first.close()

    const second = open(db)
    expect(await second.map<Todo>('todos').get('t1')).toEqual({ title: 'kept', done: false })
  })
})

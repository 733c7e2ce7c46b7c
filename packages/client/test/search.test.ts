/**
 * `map.search` through the SDK in in-page mode (the engine in this realm, fake-indexeddb):
 * a declared map answers ranked, live hits that follow writes and deletes, offline; one
 * declaration serves every handle of the map in the client; bad searches reject with
 * typed errors; the index survives a client restart (it is the engine's, in IndexedDB).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { EmptySearchError, QueryError, SearchNotDeclaredError, UnknownSearchFieldError, createClient, type OutpostClient, type OutpostError } from '../src/index'
import { freshDb, waitFor } from './helpers'

interface Task {
  title: string
  notes: string
  done: boolean
}

const clients: OutpostClient[] = []
function open(db: ReturnType<typeof freshDb>): OutpostClient {
  const client = createClient({ name: db.name, mode: 'in-page', engine: { indexedDB: db.indexedDB } })
  clients.push(client)
  return client
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()))
})

describe('map.search (in-page)', () => {
  it('answers ranked live hits that follow writes and deletes, for every handle of a declared map', async () => {
    const db = freshDb()
    const client = open(db)
    const tasks = client.map<Task>('tasks', { search: { fields: ['title', 'notes'] } })
    expect(client.mode).toBe('in-page')
    await tasks.set('a', { title: 'Water the garden', notes: '', done: false })
    await tasks.set('b', { title: 'Buy seeds', notes: 'for the garden beds, garden centre', done: false })
    const live = tasks.search('garden')
    expect(tasks.search('garden')).toBe(live)
    const first = await waitFor(live, (hits) => hits.length === 2)
    // Ranked: two mentions beat one.
    expect(first.map((h) => h.key)).toEqual(['b', 'a'])
    expect(first[1]?.value.title).toBe('Water the garden')

    // Another handle of the same map (no options) searches with the client's declaration.
    const other = client.map<Task>('tasks')
    await other.set('c', { title: 'Garden party', notes: '', done: true })
    await waitFor(live, (hits) => hits.some((h) => h.key === 'c'))
    await other.delete('a')
    const after = await waitFor(live, (hits) => !hits.some((h) => h.key === 'a'))
    expect(after.map((h) => h.key).sort()).toEqual(['b', 'c'])
    expect((await other.search('gard', { filter: { eq: ['done', true] } }).get()).map((h) => h.key)).toEqual(['c'])
  })

  it('rejects bad searches with typed errors', async () => {
    const client = open(freshDb())
    const plain = client.map<Task>('plain')
    const notDeclared = (await plain.search('x').get().catch((error: unknown) => error)) as OutpostError
    expect(notDeclared).toBeInstanceOf(SearchNotDeclaredError)
    expect(notDeclared.message).toContain("client.map('plain', { search: { fields:")

    const tasks = client.map<Task>('tasks', { search: { fields: ['title'] } })
    await expect(tasks.search('   ').get()).rejects.toBeInstanceOf(EmptySearchError)
    await expect(tasks.search('x', { fields: ['notes'] }).get()).rejects.toMatchObject({ code: 'SEARCH_UNKNOWN_FIELD' })
    await expect(tasks.search('x', { fields: ['notes'] }).get()).rejects.toBeInstanceOf(UnknownSearchFieldError)
    await expect(tasks.search('x', { limit: 5_000 }).get()).rejects.toBeInstanceOf(QueryError)
    expect(() => client.map('bad', { search: { fields: [] } })).toThrow(QueryError)
    const errors: OutpostError[] = []
    tasks.search('  ').subscribe(() => {}, (error) => errors.push(error))
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(errors.map((e) => e.code)).toEqual(['SEARCH_EMPTY_QUERY'])
  })

  it('finds the same records after the client restarts on the same database', async () => {
    const db = freshDb()
    const first = open(db)
    const tasks = first.map<Task>('tasks', { search: { fields: ['title', 'notes'] } })
    for (let i = 0; i < 50; i++) await tasks.set(`t${i}`, { title: i % 5 === 0 ? `invoice ${i}` : `task ${i}`, notes: '', done: false })
    expect((await tasks.search('invoice', { limit: 100 }).get()).length).toBe(10)
    await first.close()
    clients.splice(clients.indexOf(first), 1)

    const second = open(db)
    const again = second.map<Task>('tasks', { search: { fields: ['title', 'notes'] } })
    expect((await again.search('invoice', { limit: 100 }).get()).map((h) => h.key).sort()).toEqual(['t0', 't10', 't15', 't20', 't25', 't30', 't35', 't40', 't45', 't5'])
  })
})

/**
 * A bad predicate (or query) reaches the app as a typed error, never as an uncaught page
 * error: through the subscriber's `onError`, through `get()` rejecting, through the
 * client-level `onError` when the subscriber gave none, or `console.error` as the last
 * resort. Runs the SDK in in-page mode on fake-indexeddb.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { OutpostError, PredicateError, QueryError, createClient, type ClientOptions, type OutpostClient } from '../src/index'
import { freshDb } from './helpers'

const clients: OutpostClient[] = []
function open(options: Partial<ClientOptions> = {}): OutpostClient {
  const db = freshDb('query-errors')
  const client = createClient({ name: db.name, mode: 'in-page', engine: { indexedDB: db.indexedDB }, ...options })
  clients.push(client)
  return client
}

afterEach(async () => {
  vi.restoreAllMocks()
  await Promise.all(clients.splice(0).map((client) => client.close()))
})

// `eq` needs a field and a value: this is what a typo in app code looks like.
const BAD_WHERE = { where: { eq: ['done'] } as never }

/** Resolves with the next error `onError` receives (bounded, so a lost error fails the test). */
function nextError(register: (onError: (error: OutpostError) => void) => void, timeoutMs = 5000): Promise<OutpostError> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no error arrived within ${timeoutMs} ms`)), timeoutMs)
    register((error) => {
      clearTimeout(timer)
      resolve(error)
    })
  })
}

function expectPredicateError(error: unknown): void {
  expect(error).toBeInstanceOf(PredicateError)
  expect(error).toBeInstanceOf(OutpostError)
  expect((error as PredicateError).code).toBe('INVALID_PREDICATE')
  expect((error as PredicateError).name).toBe('PredicateError')
}

describe('errors of live queries', () => {
  it('reach the subscriber’s onError with their class and code', async () => {
    const client = open()
    const rows: unknown[] = []
    const error = await nextError((onError) => client.map('todos').query(BAD_WHERE).subscribe((r) => rows.push(r), onError))
    expectPredicateError(error)
    expect(rows).toEqual([])
  })

  it('without onError go to the client’s onError, not to an uncaught exception', async () => {
    let handler: ((error: OutpostError) => void) | undefined
    const client = open({ onError: (error) => handler?.(error) })
    const error = await nextError((onError) => {
      handler = onError
      client.map('todos').query(BAD_WHERE).subscribe(() => {})
    })
    expectPredicateError(error)
  })

  it('with no handler anywhere are logged with what to do', async () => {
    const logged = new Promise<unknown[]>((resolve, reject) => {
      setTimeout(() => reject(new Error('nothing was logged within 5 s')), 5000)
      vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => resolve(args))
    })
    const client = open()
    client.map('todos').query({ orderBy: [['title', 'sideways']] } as never).subscribe(() => {})
    const [message, error] = await logged
    expect(error).toBeInstanceOf(QueryError)
    expect((error as QueryError).code).toBe('INVALID_QUERY')
    expect(message).toMatch(/onError/)
  })

  it('reject get(), also for a query that already failed for another subscriber', async () => {
    const client = open()
    const query = client.map('todos').query(BAD_WHERE)
    const first = await query.get().then(
      () => undefined,
      (e: unknown) => e,
    )
    expectPredicateError(first)

    // A component still holds the failed subscription: late readers learn the error at once instead of waiting forever.
    const held = await nextError((onError) => query.subscribe(() => {}, onError))
    expectPredicateError(held)
    expect(query.getError()).toBe(held)
    const late = await Promise.race([
      query.get().then(
        () => 'resolved',
        (e: unknown) => e,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still pending after 2 s'), 2000)),
    ])
    expectPredicateError(late)
    const second = await nextError((onError) => query.subscribe(() => {}, onError), 2000)
    expect(second).toBe(held)
  })

  it('end with the last subscriber, so a fixed query starts clean', async () => {
    const client = open()
    const todos = client.map<{ title: string; done: boolean }>('todos')
    const query = todos.query(BAD_WHERE)
    let stop: (() => void) | undefined
    await nextError((onError) => {
      stop = query.subscribe(() => {}, onError)
    })
    stop?.()
    expect(query.getError()).toBeUndefined()
    await todos.set('t1', { title: 'Buy milk', done: false })
    expect(await todos.query({ where: { eq: ['done', false] } }).get()).toEqual([{ key: 't1', value: { title: 'Buy milk', done: false } }])
  })
})

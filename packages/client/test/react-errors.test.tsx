// @vitest-environment happy-dom
/**
 * The React hooks' error path, mounted for real (react-dom/client on happy-dom, the SDK
 * in in-page mode): `useQuery` throws an invalid query's typed error to the nearest
 * error boundary, `useQueryResult` returns it, and neither leaves an uncaught error.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Component, type ReactNode } from 'react'
import { createRoot, type Root } from 'react-dom/client'
import { OutpostError, PredicateError, createClient, type OutpostClient, type Query } from '../src/index'
import { OutpostProvider, useQuery, useQueryResult } from '../src/react/index'
import { freshDb, until } from './helpers'

interface Todo {
  title: string
  done: boolean
}

const BAD: Query = { where: { eq: ['done'] } as never }
const GOOD: Query = { where: { eq: ['done', false] } }

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function open(): OutpostClient {
  const db = freshDb('react-errors')
  const client = createClient({ name: db.name, mode: 'in-page', engine: { indexedDB: db.indexedDB } })
  cleanups.push(() => client.close())
  return client
}

/** What React reported: errors an error boundary caught, and errors none did. */
interface Reported {
  readonly caught: unknown[]
  readonly uncaught: unknown[]
}

function mount(client: OutpostClient, children: ReactNode, reported: Reported = { caught: [], uncaught: [] }): HTMLElement {
  const container = document.createElement('div')
  document.body.append(container)
  const root: Root = createRoot(container, {
    onCaughtError: (error) => void reported.caught.push(error),
    onUncaughtError: (error) => void reported.uncaught.push(error),
  })
  // Rendered as in a browser (no act()): React schedules its work, the test waits for the result.
  root.render(<OutpostProvider client={client}>{children}</OutpostProvider>)
  cleanups.push(async () => {
    root.unmount()
    container.remove()
  })
  return container
}

/** Waits until the engine answered and React committed what it answered. */
async function settle(container: HTMLElement, ready: () => boolean): Promise<void> {
  await until(ready, 5000, `the component to show its result; it shows: ${container.innerHTML}`)
}

/** A minimal error boundary, as an app would write one. */
class Boundary extends Component<{ children: ReactNode }, { error: unknown }> {
  override state: { error: unknown } = { error: null }
  static getDerivedStateFromError(error: unknown) {
    return { error }
  }
  override render() {
    const { error } = this.state
    if (error === null) return this.props.children
    const typed = error instanceof OutpostError
    return (
      <p data-class={error instanceof PredicateError ? 'PredicateError' : typed ? 'OutpostError' : 'other'} data-code={typed ? error.code : ''}>
        {typed ? error.message : String(error)}
      </p>
    )
  }
}

function TodoList({ query }: { query: Query }) {
  const rows = useQuery<Todo>('todos', query)
  return (
    <ul>
      {rows.map((row) => (
        <li key={row.key}>{row.value.title}</li>
      ))}
    </ul>
  )
}

function TodoListWithError({ query }: { query: Query }) {
  const { rows, error } = useQueryResult<Todo>('todos', query)
  if (error) return <p role="alert" data-code={error.code} data-class={error instanceof PredicateError ? 'PredicateError' : 'other'} />
  return <span data-count={rows.length} />
}

describe('React hooks and an invalid query', () => {
  it('useQuery throws the typed error to the nearest error boundary', async () => {
    const client = open()
    const reported: Reported = { caught: [], uncaught: [] }

    const container = mount(
      client,
      <>
        <Boundary>
          <TodoList query={BAD} />
        </Boundary>
        <Boundary>
          <TodoList query={GOOD} />
        </Boundary>
      </>,
      reported,
    )
    await settle(container, () => container.querySelector('[data-code]') !== null)
    const shown = container.querySelector('[data-code]')
    expect(shown?.getAttribute('data-class')).toBe('PredicateError')
    expect(shown?.getAttribute('data-code')).toBe('INVALID_PREDICATE')
    // The other list is unaffected and stays live.
    await client.map<Todo>('todos').set('t1', { title: 'walk dog', done: false })
    await settle(container, () => container.querySelector('li')?.textContent === 'walk dog')
    expect(reported.caught).toHaveLength(1)
    expect(reported.caught[0]).toBeInstanceOf(PredicateError)
    expect(reported.uncaught).toEqual([])
  })

  it('useQueryResult returns the typed error and keeps rendering', async () => {
    const client = open()
    const container = mount(client, <TodoListWithError query={BAD} />)
    await settle(container, () => container.querySelector('[role="alert"]') !== null)
    const alert = container.querySelector('[role="alert"]')
    expect(alert?.getAttribute('data-class')).toBe('PredicateError')
    expect(alert?.getAttribute('data-code')).toBe('INVALID_PREDICATE')

    const good = mount(client, <TodoListWithError query={GOOD} />)
    await client.map<Todo>('todos').set('t1', { title: 'walk dog', done: false })
    await settle(good, () => good.querySelector('[data-count="1"]') !== null)
  })
})

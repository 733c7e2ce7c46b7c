/**
 * The React hooks: components render what the live stores hold (server rendering reads
 * the same snapshot a mounted component would), and hooks of equal queries share one
 * store. Rendering uses react-dom/server, so no DOM emulation is needed.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { renderToString } from 'react-dom/server'
import { createClient, WorkerUnavailableError, type OutpostClient } from '../src/index'
import { OutpostProvider, useCounter, useQuery, useRecord, useStatus } from '../src/react/index'
import { freshDb, waitFor } from './helpers'

interface Todo {
  title: string
  done: boolean
}

const clients: OutpostClient[] = []
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()))
})

function open(): OutpostClient {
  const db = freshDb('react')
  const client = createClient({ name: db.name, mode: 'in-page', engine: { indexedDB: db.indexedDB } })
  clients.push(client)
  return client
}

function TodoList() {
  const rows = useQuery<Todo>('todos', { where: { eq: ['done', false] }, orderBy: [['title', 'asc']] })
  return (
    <ul>
      {rows.map((row) => (
        <li key={row.key}>{row.value.title}</li>
      ))}
    </ul>
  )
}

function Title({ id }: { id: string }) {
  const todo = useRecord<Todo>('todos', id)
  return <h1>{todo ? todo.title : 'none'}</h1>
}

function Likes() {
  return <span>likes={useCounter('likes')}</span>
}

function Mode() {
  return <span>mode={useStatus().mode}</span>
}

describe('React hooks', () => {
  it('render the live rows, record, counter and status the client holds', async () => {
    const client = open()
    const todos = client.map<Todo>('todos')
    // Equal queries (even written differently) are one store: what the hook reads is what this subscription fills.
    const q = todos.query({ orderBy: [['title', 'asc']], where: { eq: ['done', false] } })
    const stopQuery = q.subscribe(() => {})
    const stopRecord = todos.record('t2').subscribe(() => {})
    const likes = client.counter('likes')
    const stopLikes = likes.subscribe(() => {})

    const app = (
      <OutpostProvider client={client}>
        <TodoList />
        <Title id="t2" />
        <Likes />
        <Mode />
      </OutpostProvider>
    )
    expect(renderToString(app)).toContain('<ul></ul>')

    await todos.set('t1', { title: 'walk dog', done: false })
    await todos.set('t2', { title: 'buy milk', done: false })
    await todos.set('t3', { title: 'done already', done: true })
    await likes.increment(3)
    await waitFor(q, (rows) => rows.length === 2)
    await waitFor(todos.record('t2'), (v) => v?.title === 'buy milk')
    await waitFor(likes, (v) => v === 3)

    const html = renderToString(app)
    expect(html).toContain('<li>buy milk</li><li>walk dog</li>')
    expect(html).not.toContain('done already')
    expect(html).toContain('<h1>buy milk</h1>')
    expect(html).toContain('likes=<!-- -->3')
    expect(html).toContain('mode=<!-- -->in-page')

    await todos.update('t1', { done: true })
    await waitFor(q, (rows) => rows.length === 1)
    expect(renderToString(app)).toContain('<ul><li>buy milk</li></ul>')
    stopQuery()
    stopRecord()
    stopLikes()
  })

  it('useClient outside a provider says what to do', () => {
    expect(() => renderToString(<Likes />)).toThrow(WorkerUnavailableError)
    expect(() => renderToString(<Likes />)).toThrow(/OutpostProvider/)
  })
})

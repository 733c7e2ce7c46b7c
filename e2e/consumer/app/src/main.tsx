/**
 * A minimal app written only against the published packages: it writes notes, lists them
 * with `useQuery`, counts them with a plain live query, shows the status, and shows what
 * a bad predicate gives its error callback. The page's URL names the relay and database.
 */
import { StrictMode, useEffect, useState } from 'react'
import { createRoot } from 'react-dom/client'
import { createClient, type OutpostError } from '@outpost/client'
import { OutpostProvider, useQuery, useStatus } from '@outpost/client/react'

interface Note {
  text: string
}

const params = new URLSearchParams(window.location.search)
const client = createClient({ url: params.get('relay') ?? 'ws://127.0.0.1:8787', name: params.get('db') ?? 'consumer' })
client.sync('notes')
const notes = client.map<Note>('notes')

function App() {
  const rows = useQuery(notes, { orderBy: [['text', 'asc']] })
  const status = useStatus()
  const [text, setText] = useState('')
  const [count, setCount] = useState<number | null>(null)
  const [badQuery, setBadQuery] = useState('')

  // A live query without the hook: `subscribe` and its error callback.
  useEffect(() => notes.query({}).subscribe((all) => setCount(all.length)), [])
  useEffect(
    () =>
      notes.query({ where: { nope: ['text', 1] } as never }).subscribe(
        () => setBadQuery('rows'),
        (error: OutpostError) => setBadQuery(`${error.name} ${error.code}`),
      ),
    [],
  )

  return (
    <main>
      <p>
        <span data-testid="mode">{status.mode}</span> <span data-testid="connection">{status.connection}</span>{' '}
        <span data-testid="pending">{status.pendingWrites}</span> <span data-testid="count">{count ?? ''}</span>{' '}
        <span data-testid="bad-query">{badQuery}</span>
      </p>
      <form
        onSubmit={(event) => {
          event.preventDefault()
          void notes.set(crypto.randomUUID(), { text })
          setText('')
        }}
      >
        <input data-testid="text" value={text} onChange={(event) => setText(event.target.value)} />
        <button data-testid="add" type="submit">
          Add
        </button>
      </form>
      <ul>
        {rows.map((row) => (
          <li key={row.key} data-testid="note">
            {row.value.text}
          </li>
        ))}
      </ul>
    </main>
  )
}

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <OutpostProvider client={client}>
      <App />
    </OutpostProvider>
  </StrictMode>,
)

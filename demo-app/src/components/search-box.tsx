/**
 * Search over task titles and notes: a full-text index kept in the Outpost engine (on this
 * device, in IndexedDB), so it answers offline and its ranked hits update live as tasks
 * change here, in another tab, or on another device.
 */
import { useMemo, useState } from 'react'
import { hasSearchWord, type LiveSearch, type RecordValue } from '@outpost/client'
import { useClient, useLiveResult } from '@outpost/client/react'
import { TASKS_MAP } from '../task'
import { toTask } from '../task-queries'

/** What the tasks map indexes: declared once for this client; every handle of the map then searches with it. */
export const TASK_SEARCH = { fields: ['title', 'notes'] } as const

/** A search field and, once it holds a word, the live hits. */
export function SearchBox() {
  const [text, setText] = useState('')
  return (
    <section className="search" aria-label="Search tasks">
      <input
        type="search"
        className="search-input"
        data-testid="search-input"
        value={text}
        placeholder="Search titles and notes…"
        aria-label="Search tasks"
        autoComplete="off"
        onChange={(event) => setText(event.target.value)}
      />
      {/* An empty box searches nothing (the engine refuses text with no word: EmptySearchError). */}
      {hasSearchWord(text) ? <SearchHits text={text.trim()} /> : null}
    </section>
  )
}

function SearchHits({ text }: { readonly text: string }) {
  const client = useClient()
  const live: LiveSearch<RecordValue> = useMemo(() => client.map<RecordValue>(TASKS_MAP, { search: { fields: [...TASK_SEARCH.fields] } }).search(text, { limit: 10, fuzzy: 0.2 }), [client, text])
  const { value: hits, error } = useLiveResult(live)
  if (error) return <p className="search-note" role="alert" data-testid="search-error">{error.message}</p>
  if (hits === undefined) return <p className="search-note">Searching…</p>
  if (hits.length === 0) return <p className="search-note" data-testid="search-empty">No task matches “{text}”.</p>
  return (
    <ol className="search-hits" data-testid="search-results" data-count={hits.length}>
      {hits.map((hit) => {
        const task = toTask(hit.value)
        return (
          <li key={hit.key} className="search-hit" data-testid="search-hit" data-key={hit.key}>
            <span className="search-hit-title">{task.title}</span>
            {task.notes === '' ? null : <span className="search-hit-notes">{task.notes}</span>}
          </li>
        )
      })}
    </ol>
  )
}

/** The "new task" bar at the top of the board. */
import { useState } from 'react'

/** Props of {@link Composer}. */
export interface ComposerProps {
  /** Creates a task with this (non-empty, trimmed) title. */
  readonly onCreate: (title: string) => void
}

/** A one-line form that adds a task; the field clears and keeps focus for the next one. */
export function Composer({ onCreate }: ComposerProps) {
  const [title, setTitle] = useState('')
  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault()
        const trimmed = title.trim()
        if (trimmed === '') return
        onCreate(trimmed)
        setTitle('')
      }}
    >
      <input
        data-testid="new-task-title"
        className="composer-input"
        value={title}
        placeholder="What needs doing?"
        aria-label="New task title"
        autoComplete="off"
        onChange={(event) => setTitle(event.target.value)}
      />
      <button data-testid="new-task-submit" className="button button-primary" type="submit" disabled={title.trim() === ''}>
        Add task
      </button>
    </form>
  )
}

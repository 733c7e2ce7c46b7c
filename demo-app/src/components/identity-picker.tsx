/** The "who am I" field in the header: the name this device uses as its assignee identity. */
import { useEffect, useState } from 'react'
import { Avatar } from './avatar'

/** Props of {@link IdentityPicker}. */
export interface IdentityPickerProps {
  readonly name: string
  readonly onChange: (name: string) => void
  /** Names already seen on the board, offered as suggestions. */
  readonly people: readonly string[]
}

/** Lets a person say who they are; saved on Enter or when leaving the field. */
export function IdentityPicker({ name, onChange, people }: IdentityPickerProps) {
  const [draft, setDraft] = useState(name)
  useEffect(() => setDraft(name), [name])
  const commit = (): void => {
    if (draft.trim() !== name) onChange(draft)
  }
  return (
    <form
      className={`identity${name === '' ? ' identity-missing' : ''}`}
      onSubmit={(event) => {
        event.preventDefault()
        commit()
      }}
    >
      <Avatar name={name} />
      <label className="identity-label">
        <span>You are</span>
        <input
          data-testid="who-am-i"
          value={draft}
          list="known-people"
          placeholder="Your name"
          autoComplete="off"
          aria-label="Your name"
          onChange={(event) => setDraft(event.target.value)}
          onBlur={commit}
        />
      </label>
      <datalist id="known-people">
        {people.map((person) => (
          <option key={person} value={person} />
        ))}
      </datalist>
    </form>
  )
}

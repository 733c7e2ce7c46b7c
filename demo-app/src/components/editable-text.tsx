/**
 * A text field edited in place. While it has focus it shows what the person is typing
 * (remote changes to this field wait until they leave it); otherwise it shows the live
 * value. Edits are saved as the person pauses, on Enter (single line) and on leaving
 * the field; Escape puts back the saved value. Each save writes only this one field.
 */
import { useEffect, useRef, useState, type KeyboardEvent } from 'react'

/** Props of {@link EditableText}. */
export interface EditableTextProps {
  /** The live, stored value. */
  readonly value: string
  /** Saves a new value (called only when it differs from `value`). */
  readonly onCommit: (value: string) => void
  /** A textarea that grows with its content instead of a one-line input. */
  readonly multiline?: boolean
  readonly placeholder?: string
  readonly ariaLabel: string
  readonly className?: string
  readonly testId: string
  /** A `<datalist>` id offering suggestions. */
  readonly list?: string
  /** How long a typing pause is before the draft is saved. */
  readonly saveAfterMs?: number
  /** The person started editing (focus). */
  readonly onEditStart?: () => void
  /** The person stopped editing (blur). */
  readonly onEditEnd?: () => void
}

/** An in-place text editor for one field of a record. */
export function EditableText({ value, onCommit, multiline = false, placeholder, ariaLabel, className, testId, list, saveAfterMs = 600, onEditStart, onEditEnd }: EditableTextProps) {
  // null: not editing, show the live value.
  const [draft, setDraft] = useState<string | null>(null)
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  const committed = useRef(value)
  const textarea = useRef<HTMLTextAreaElement>(null)
  // Set by Escape so the blur that follows does not save the abandoned draft.
  const cancelled = useRef(false)
  if (draft === null) committed.current = value

  const shown = draft ?? value

  useEffect(() => () => clearTimeout(timer.current), [])

  useEffect(() => {
    const el = textarea.current
    if (!el) return
    // Grow with the content so notes never hide behind a scrollbar.
    el.style.height = 'auto'
    el.style.height = `${el.scrollHeight}px`
  }, [shown, multiline])

  const save = (next: string): void => {
    clearTimeout(timer.current)
    if (next !== committed.current) {
      committed.current = next
      onCommit(next)
    }
  }

  const onChange = (next: string): void => {
    setDraft(next)
    clearTimeout(timer.current)
    timer.current = setTimeout(() => save(next), saveAfterMs)
  }

  const onBlur = (): void => {
    if (cancelled.current) cancelled.current = false
    else if (draft !== null) save(draft)
    setDraft(null)
    onEditEnd?.()
  }

  const onKeyDown = (event: KeyboardEvent<HTMLInputElement | HTMLTextAreaElement>): void => {
    if (event.key === 'Escape') {
      clearTimeout(timer.current)
      cancelled.current = true
      setDraft(null)
      event.currentTarget.blur()
    } else if (event.key === 'Enter' && (!multiline || event.metaKey || event.ctrlKey)) {
      event.preventDefault()
      if (draft !== null) save(draft)
      event.currentTarget.blur()
    }
  }

  const common = {
    value: shown,
    placeholder,
    'aria-label': ariaLabel,
    className,
    'data-testid': testId,
    spellCheck: multiline,
    onFocus: () => {
      setDraft((d) => d ?? value)
      onEditStart?.()
    },
    onBlur,
    onKeyDown,
  }
  return multiline ? (
    <textarea ref={textarea} rows={1} {...common} onChange={(e) => onChange(e.target.value)} />
  ) : (
    <input type="text" list={list} autoComplete="off" {...common} onChange={(e) => onChange(e.target.value)} />
  )
}

/**
 * Writes the relay refused for good, told to the person in plain words.
 *
 * The SDK reports them in `client.status.rejected` (`count` since the database was
 * created, `lastError`, the newest `keys`), and has already taken each refused write back
 * on this device, so the record shows the relay's version again. The board shows a notice
 * while `count` is above the count the person last dismissed; that number is kept per
 * database in localStorage, so a dismissed notice stays dismissed across reloads and tabs,
 * and a refusal that arrives while no tab is open is still shown at the next visit.
 */
import { useCallback, useEffect, useState } from 'react'
import { LIKES_MAP, TASKS_MAP } from './task'

/** What the SDK's status reports about refused writes (structurally `ClientStatus['rejected']`). */
export interface RejectedView {
  readonly count: number
  readonly lastError: { readonly code: string; readonly message: string } | null
  readonly keys: readonly { readonly map: string; readonly key: string }[]
}

/** What the notice says. */
export interface RejectionNotice {
  /** Refusals not yet dismissed. */
  readonly unseen: number
  /** One sentence: what was not saved and why. */
  readonly text: string
  /** The relay's own words, for the curious (a tooltip). */
  readonly detail: string
  /** The newest refusal's error code. */
  readonly code: string
}

/** The reason of a refusal in plain words (the relay's message is for developers). */
export function reasonInWords(code: string): string {
  switch (code) {
    case 'FORBIDDEN':
      return 'the server’s rules do not allow it'
    case 'VALUE_TOO_LARGE':
      return 'it is too large to sync'
    case 'INVALID_VALUE':
    case 'INVALID_KEY':
    case 'SCHEMA_VALIDATION':
      return 'the server cannot store it'
    default:
      return 'the server refused it'
  }
}

/**
 * The notice for refusals past `seen` (null when there is none). `titleOf` gives a task's
 * current title (the relay's version, since the refused write was taken back), or
 * undefined when the task is not on this device.
 */
export function describeRejections(rejected: RejectedView, seen: number, titleOf: (taskId: string) => string | undefined): RejectionNotice | null {
  // A database created again starts counting from 0: everything it reports is new.
  const unseen = rejected.count >= seen ? rejected.count - seen : rejected.count
  const error = rejected.lastError
  if (unseen === 0 || error === null) return null
  const newest = rejected.keys[0]
  const title = newest === undefined ? undefined : titleOf(newest.key)
  const reason = reasonInWords(error.code)
  let what: string
  if (newest?.map === TASKS_MAP) what = title === undefined ? 'Your change to a task' : `Your change to “${title}”`
  else if (newest?.map === LIKES_MAP) what = title === undefined ? 'Your like' : `Your like on “${title}”`
  else what = 'A change'
  const more = unseen > 1 ? ` (${unseen} changes were not saved.)` : ''
  return { unseen, text: `${what} was not saved: ${reason}.${more}`, detail: `${error.code}: ${error.message}`, code: error.code }
}

function storageKey(dbName: string): string {
  return `outpost-demo:rejections-seen:${dbName}`
}

function readSeen(dbName: string): number {
  try {
    const raw = window.localStorage.getItem(storageKey(dbName))
    const seen = raw === null ? 0 : Number(raw)
    return Number.isInteger(seen) && seen >= 0 ? seen : 0
  } catch (error) {
    reportBlocked(error)
    return 0
  }
}

/** Without localStorage a dismissed notice comes back after a reload; nothing else is lost. */
function reportBlocked(error: unknown): void {
  console.warn('Outpost demo: localStorage is unavailable, dismissed notices will show again after a reload', error)
}

/** How many refusals this database's person has dismissed, and a function to dismiss up to `count`. */
export function useSeenRejections(dbName: string): readonly [number, (count: number) => void] {
  const [seen, setSeen] = useState(() => readSeen(dbName))
  useEffect(() => {
    // Another tab of this device dismissed it.
    const onStorage = (event: StorageEvent): void => {
      if (event.key === storageKey(dbName)) setSeen(readSeen(dbName))
    }
    window.addEventListener('storage', onStorage)
    return () => window.removeEventListener('storage', onStorage)
  }, [dbName])
  const dismiss = useCallback(
    (count: number) => {
      try {
        window.localStorage.setItem(storageKey(dbName), String(count))
      } catch (error) {
        reportBlocked(error)
      }
      setSeen(count)
    },
    [dbName],
  )
  return [seen, dismiss] as const
}

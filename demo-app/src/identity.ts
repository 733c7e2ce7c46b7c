/**
 * "Who am I": the name this browser uses as its assignee identity. Kept in localStorage
 * per database name, so two `?db=` devices in one browser can be two people, and every
 * tab of one device agrees (a `storage` event tells the other tabs of a change).
 */
import { useCallback, useEffect, useState } from 'react'

function storageKey(dbName: string): string {
  return `outpost-demo:me:${dbName}`
}

/** Reads the stored name ('' when none was chosen, or when storage is blocked). */
export function loadName(dbName: string): string {
  try {
    return window.localStorage.getItem(storageKey(dbName)) ?? ''
  } catch (error) {
    reportStorageBlocked(error)
    return ''
  }
}

/** Stores the name; a blocked localStorage only means the name is not remembered. */
export function saveName(dbName: string, name: string): void {
  try {
    window.localStorage.setItem(storageKey(dbName), name)
  } catch (error) {
    reportStorageBlocked(error)
  }
}

function reportStorageBlocked(error: unknown): void {
  console.warn('Outpost demo: localStorage is unavailable, the name will not be remembered', error)
}

/**
 * The current name and a setter that stores it. `initial` (from `?me=`) wins over the
 * stored name and is stored in its place.
 */
export function useIdentity(dbName: string, initial: string | undefined): readonly [string, (name: string) => void] {
  const [name, setNameState] = useState(() => {
    if (initial !== undefined) saveName(dbName, initial)
    return initial ?? loadName(dbName)
  })

  useEffect(() => {
    const onStorage = (event: StorageEvent): void => {
      if (event.key === storageKey(dbName)) setNameState(event.newValue ?? '')
    }
    window.addEventListener('storage', onStorage)
    return () => window.removeEventListener('storage', onStorage)
  }, [dbName])

  const setName = useCallback(
    (next: string) => {
      const trimmed = next.trim()
      saveName(dbName, trimmed)
      setNameState(trimmed)
    },
    [dbName],
  )
  return [name, setName] as const
}

/** A UI choice (view, sort) remembered per database in localStorage. */
import { useCallback, useState } from 'react'

/**
 * Like `useState`, but starts from (and saves to) localStorage under `key`, accepting only
 * values from `allowed`; `initial` (e.g. from the URL) wins over the stored value.
 */
export function useStoredChoice<T extends string>(key: string, allowed: readonly T[], fallback: T, initial?: string | null): readonly [T, (value: T) => void] {
  const [value, setValue] = useState<T>(() => {
    const pick = (candidate: string | null | undefined): T | undefined => allowed.find((a) => a === candidate)
    return pick(initial) ?? pick(read(key)) ?? fallback
  })
  const update = useCallback(
    (next: T) => {
      write(key, next)
      setValue(next)
    },
    [key],
  )
  return [value, update] as const
}

function read(key: string): string | null {
  try {
    return window.localStorage.getItem(key)
  } catch (error) {
    reportBlocked(error)
    return null
  }
}

function write(key: string, value: string): void {
  try {
    window.localStorage.setItem(key, value)
  } catch (error) {
    reportBlocked(error)
  }
}

function reportBlocked(error: unknown): void {
  console.warn('Outpost demo: localStorage is unavailable, choices will not be remembered', error)
}

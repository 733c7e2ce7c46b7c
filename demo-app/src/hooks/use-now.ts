/** A clock for "12 s ago" labels: re-renders every `intervalMs`. */
import { useEffect, useState } from 'react'

/** The current time, refreshed every `intervalMs` (time is injectable for tests through `now`). */
export function useNow(intervalMs = 1000, now: () => number = Date.now): number {
  const [time, setTime] = useState(now)
  useEffect(() => {
    const timer = setInterval(() => setTime(now()), intervalMs)
    return () => clearInterval(timer)
  }, [intervalMs, now])
  return time
}

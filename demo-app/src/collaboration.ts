/**
 * Who is looking at the board, and who is editing which task.
 *
 * Presence: every tab joins `client.presence('board', { name, editing })`; the header
 * shows the members (other tabs and devices included). Editing: when a person starts
 * editing a task's title or notes, this tab takes the lock `task:<id>` with a TTL and
 * extends it while they keep editing, and says so in its presence state so others can
 * show "<name> is editing". Leaving the field releases it. The lock is advisory: edits
 * still merge field by field, and offline (no relay, so no lock) editing simply goes on.
 */
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react'
import { useClient } from '@outpost/client/react'
import type { Lease, Presence, PresenceMember } from '@outpost/client'

/** What this demo publishes as presence state. */
export interface BoardPresenceState {
  readonly name: string
  /** The task this member holds the editing lock of, or null. */
  readonly editing: string | null
}

/** Lease duration of the editing lock (ms); extended every {@link LOCK_EXTEND_MS} while editing. */
export const LOCK_TTL_MS = 15_000
/** How often a held editing lock is extended (ms). */
export const LOCK_EXTEND_MS = 5_000
/** Moving between fields of one task keeps the lock: release waits this long for a new focus (ms). */
export const RELEASE_GRACE_MS = 250

/** The lock name of a task. */
export function taskLockName(taskId: string): string {
  return `task:${taskId}`
}

/** A display name for a member (people who have not chosen a name yet are "Guest"). */
export function displayName(member: PresenceMember<BoardPresenceState>): string {
  return member.state.name.trim() === '' ? 'Guest' : member.state.name
}

/** Task id → names of *other* members editing it (one name per person, in member order). */
export function editorsByTask(members: readonly PresenceMember<BoardPresenceState>[]): ReadonlyMap<string, readonly string[]> {
  const out = new Map<string, string[]>()
  for (const member of members) {
    if (member.self || member.state.editing === null) continue
    const names = out.get(member.state.editing) ?? []
    const name = displayName(member)
    if (!names.includes(name)) names.push(name)
    out.set(member.state.editing, names)
  }
  return out
}

/** One entry per person for the header: tabs of the same name collapse into one avatar. */
export function viewers(members: readonly PresenceMember<BoardPresenceState>[]): readonly { readonly name: string; readonly self: boolean; readonly tabs: number }[] {
  const byName = new Map<string, { name: string; self: boolean; tabs: number }>()
  for (const member of members) {
    const name = displayName(member)
    const entry = byName.get(name) ?? { name, self: false, tabs: 0 }
    entry.tabs++
    entry.self ||= member.self
    byName.set(name, entry)
  }
  return [...byName.values()].sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name))
}

const NO_MEMBERS: readonly PresenceMember<BoardPresenceState>[] = []

/** Joins the board's presence room as `name`; returns the handle and the live member list. */
export function useBoardPresence(name: string): { presence: Presence<BoardPresenceState> | null; members: readonly PresenceMember<BoardPresenceState>[] } {
  const client = useClient()
  const [presence, setPresence] = useState<Presence<BoardPresenceState> | null>(null)
  useEffect(() => {
    const joined = client.presence<BoardPresenceState>('board', { name: '', editing: null }, { onError: reportPresenceError })
    setPresence(joined)
    return () => {
      joined.leave().catch(reportPresenceError)
    }
  }, [client])
  useEffect(() => {
    presence?.update({ name }).catch(reportPresenceError)
  }, [presence, name])
  const subscribe = useCallback((onChange: () => void) => (presence ? presence.members.subscribe(onChange) : () => {}), [presence])
  const members = useSyncExternalStore(subscribe, () => presence?.members.getSnapshot() ?? NO_MEMBERS, () => NO_MEMBERS)
  return { presence, members: members ?? NO_MEMBERS }
}

/** The editing lock this tab holds, if any. */
export interface HeldLock {
  readonly taskId: string
  readonly token: number
}

/** What {@link useEditingLock} gives the board. */
export interface EditingLock {
  /** The lock this tab holds (at most one task at a time). */
  readonly held: HeldLock | null
  /** The person focused a field of `taskId`. */
  readonly begin: (taskId: string) => void
  /** The person left a field of `taskId`. */
  readonly end: (taskId: string) => void
}

/** Takes, extends and releases the per-task editing lock; see the module comment. */
export function useEditingLock(presence: Presence<BoardPresenceState> | null): EditingLock {
  const client = useClient()
  const [held, setHeld] = useState<HeldLock | null>(null)
  const current = useRef<{ taskId: string; lease: Lease | null; extend?: ReturnType<typeof setInterval>; release?: ReturnType<typeof setTimeout> } | null>(null)

  const announce = useCallback((editing: string | null) => presence?.update({ editing }).catch(reportPresenceError), [presence])

  const drop = useCallback(
    (entry: NonNullable<typeof current.current>) => {
      clearInterval(entry.extend)
      clearTimeout(entry.release)
      if (current.current === entry) {
        current.current = null
        setHeld(null)
        void announce(null)
      }
      entry.lease?.release().catch(reportLockError)
    },
    [announce],
  )

  const begin = useCallback(
    (taskId: string) => {
      const existing = current.current
      if (existing?.taskId === taskId) {
        clearTimeout(existing.release)
        return
      }
      if (existing) drop(existing)
      const entry: NonNullable<typeof current.current> = { taskId, lease: null }
      current.current = entry
      client
        .lock(taskLockName(taskId))
        .acquire({ ttl: LOCK_TTL_MS, wait: 0 })
        .then(
          (lease) => {
            if (current.current !== entry) {
              lease.release().catch(reportLockError)
              return
            }
            entry.lease = lease
            setHeld({ taskId, token: lease.fencingToken })
            void announce(taskId)
            entry.extend = setInterval(() => lease.extend(LOCK_TTL_MS).catch(reportLockError), LOCK_EXTEND_MS)
            lease.onLost(() => {
              if (current.current === entry) drop(entry)
            })
          },
          // Held by someone else (their badge says who) or offline: editing goes on, merged per field.
          reportLockError,
        )
    },
    [client, announce, drop],
  )

  const end = useCallback(
    (taskId: string) => {
      const entry = current.current
      if (entry?.taskId !== taskId) return
      clearTimeout(entry.release)
      entry.release = setTimeout(() => drop(entry), RELEASE_GRACE_MS)
    },
    [drop],
  )

  useEffect(
    () => () => {
      if (current.current) drop(current.current)
    },
    [drop],
  )

  return useMemo(() => ({ held, begin, end }), [held, begin, end])
}

/** Presence is a courtesy: failing to announce only means others do not see this tab for a while. */
function reportPresenceError(error: unknown): void {
  console.warn('Outpost demo: presence update failed', error)
}

/** A lock that is held elsewhere, or cannot be had offline, is expected; anything else is logged for the developer. */
function reportLockError(error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code
  if (code === 'LOCK_FAILED' || code === 'OFFLINE') return
  console.warn('Outpost demo: editing lock', error)
}

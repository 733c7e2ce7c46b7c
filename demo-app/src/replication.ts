/**
 * What this device replicates from the relay: every task ("All tasks"), or only the
 * shape of tasks assigned to the person using it ("My tasks").
 *
 * Shapes are persisted by the engine and shared by every tab of the device, so they are
 * not tied to a component's lifetime (React's double effects, or closing a tab, must not
 * drop local data). On a switch the new shape is registered first and the previous one
 * closed after it, so records both cover never leave the device; what only the old one
 * covered is dropped locally (a move-out, not a delete). The last shape registered is
 * remembered per database so a later session can close it.
 *
 * Likes (the OR map `likes`) are few and every view shows them, so the device always
 * replicates that whole map, whichever view is chosen.
 */
import { useEffect, useState } from 'react'
import type { OutpostError, Shape } from '@outpost/client'
import { useClient } from '@outpost/client/react'
import { registerUntilDone } from './register-until'
import { LIKES_MAP } from './task'
import { tasksShape, type BoardView } from './task-queries'

/** What {@link useReplication} reports. */
export interface ReplicationState {
  /** The view whose shape was last registered successfully (null until then). */
  readonly active: BoardView | null
  /** Why registering or closing a shape failed, if it did. */
  readonly error: OutpostError | null
}

function storageKey(dbName: string): string {
  return `outpost-demo:shape:${dbName}`
}

function loadShape(dbName: string): Shape | null {
  try {
    const raw = window.localStorage.getItem(storageKey(dbName))
    return raw === null ? null : (JSON.parse(raw) as Shape)
  } catch (error) {
    reportForgotten(error)
    return null
  }
}

function saveShape(dbName: string, shape: Shape): void {
  try {
    window.localStorage.setItem(storageKey(dbName), JSON.stringify(shape))
  } catch (error) {
    reportForgotten(error)
  }
}

/** Without storage the previous shape cannot be closed later; it keeps replicating, which loses nothing. */
function reportForgotten(error: unknown): void {
  console.warn('Outpost demo: could not remember the replicated shape', error)
}

function sameShape(a: Shape, b: Shape): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** Keeps the device replicating the shape of `view` (see the module comment). */
export function useReplication(dbName: string, view: BoardView, me: string): ReplicationState {
  const client = useClient()
  const [state, setState] = useState<ReplicationState>({ active: null, error: null })

  useEffect(() => {
    let current = true
    // Registering an equal shape again is a no-op in the engine, so every start may ask.
    void registerUntilDone(
      async () => {
        await client.sync(LIKES_MAP).id
      },
      () => current,
      (error) => setState((s) => ({ active: s.active, error })),
      () => setState((s) => ({ active: s.active, error: null })),
    )
    return () => {
      current = false
    }
  }, [client])

  useEffect(() => {
    let current = true
    const desired = tasksShape(view, me)
    const previous = loadShape(dbName)
    void registerUntilDone(
      async () => {
        await client.shape(desired).id
        saveShape(dbName, desired)
        if (previous !== null && !sameShape(previous, desired)) await client.shape(previous).close()
        if (current) setState({ active: view, error: null })
      },
      () => current,
      (error) => setState((s) => ({ active: s.active, error })),
    )
    // Nothing to undo on unmount: the shape belongs to the device, not to this component.
    return () => {
      current = false
    }
  }, [client, dbName, view, me])

  return state
}

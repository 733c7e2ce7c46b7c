/**
 * The board's reads and writes: a live query for the list (runs in the engine over local
 * data, so it is instant and works offline) and the writes, each touching as little as
 * possible: editing one field writes only that field.
 */
import { useCallback, useMemo, useRef, useState } from 'react'
import { OutpostError, type RecordValue, type WriteHandle } from '@outpost/client'
import { useClient, useLiveResult } from '@outpost/client/react'
import { TASKS_MAP, type EditableField, type SortKey, type Task } from './task'
import { tasksQuery, toTask } from './task-queries'

/** One task of the list. */
export interface TaskRow {
  readonly id: string
  readonly task: Task
}

/** What {@link useTaskRows} returns. */
export interface TaskRows {
  readonly rows: readonly TaskRow[]
  /** False until the first result of the first query arrived. */
  readonly loaded: boolean
  /** Why the live query failed (e.g. the engine could not be reached), if it did; the last rows stay on screen. */
  readonly error: OutpostError | null
}

/**
 * The tasks to show, live. While a new query (another sort or view) has not answered
 * yet, the previous rows stay on screen instead of flashing an empty list.
 */
export function useTaskRows(assignee: string | null, sort: SortKey): TaskRows {
  const client = useClient()
  const live = client.map<RecordValue>(TASKS_MAP).query(tasksQuery(assignee, sort))
  // The error comes back as a value (not thrown to an error boundary): the board shows it above the list.
  const { value: result, error } = useLiveResult(live)
  const last = useRef<readonly TaskRow[] | null>(null)
  const rows = useMemo(() => result?.map((row) => ({ id: row.key, task: toTask(row.value) })), [result])
  if (rows !== undefined) last.current = rows
  return { rows: rows ?? last.current ?? [], loaded: last.current !== null, error: error ?? null }
}

/** What {@link useTaskActions} returns. */
export interface TaskActions {
  create(id: string, task: Task): void
  /** Writes one field of one task, and nothing else. */
  edit(id: string, field: EditableField, value: string | number): void
  remove(id: string): void
  /** The last write that failed (writes are durable locally before they resolve, so this is rare: quota, a closed worker). */
  readonly error: OutpostError | null
}

/** The board's writes; a failed write is reported through `error`, never silently dropped. */
export function useTaskActions(): TaskActions {
  const client = useClient()
  const [error, setError] = useState<OutpostError | null>(null)
  const track = useCallback((handle: WriteHandle) => {
    handle.then(
      () => setError(null),
      (reason: unknown) => setError(reason instanceof OutpostError ? reason : new OutpostError('INTERNAL', String(reason))),
    )
  }, [])
  return useMemo(() => {
    const tasks = client.map<RecordValue>(TASKS_MAP)
    return {
      create: (id, task) => track(tasks.set(id, task)),
      edit: (id, field, value) => track(tasks.update(id, { [field]: value })),
      remove: (id) => track(tasks.delete(id)),
      error,
    }
  }, [client, track, error])
}

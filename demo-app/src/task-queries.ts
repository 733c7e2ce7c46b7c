/**
 * The board's queries and shapes as plain data: what the list shows, in which order,
 * and what a device replicates. Pure, so the same objects the UI sends to the engine
 * (and the engine to the relay) can be checked against Outpost's own evaluator in tests.
 */
import type { OrderBy, Query, RecordValue, Shape } from '@outpost/client'
import { TASKS_MAP, asPriority, asStatus, type SortKey, type Task } from './task'

/** Which tasks the board shows and the device replicates. */
export type BoardView = 'all' | 'mine'

/** The shape behind a view. */
export function tasksShape(view: BoardView, me: string): Shape {
  return view === 'mine' ? { map: TASKS_MAP, where: { eq: ['assignee', me] } } : { map: TASKS_MAP }
}

const ORDER: Readonly<Record<SortKey, OrderBy>> = {
  priority: [
    ['priority', 'desc'],
    ['createdAt', 'desc'],
  ],
  title: [['title', 'asc']],
  created: [['createdAt', 'desc']],
}

/** The live query behind the list: optionally only one assignee's tasks, in the chosen order. */
export function tasksQuery(assignee: string | null, sort: SortKey): Query {
  return assignee === null ? { orderBy: ORDER[sort] } : { where: { eq: ['assignee', assignee] }, orderBy: ORDER[sort] }
}

/**
 * Reads a record written by any version of the app (or a shape that projects fields)
 * as a complete task, so a missing field shows as empty instead of breaking the row.
 */
export function toTask(value: RecordValue): Task {
  return {
    title: typeof value['title'] === 'string' ? value['title'] : '',
    status: asStatus(value['status']),
    assignee: typeof value['assignee'] === 'string' ? value['assignee'] : '',
    priority: asPriority(value['priority']),
    notes: typeof value['notes'] === 'string' ? value['notes'] : '',
    createdAt: typeof value['createdAt'] === 'number' ? value['createdAt'] : 0,
  }
}


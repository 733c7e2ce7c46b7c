/**
 * The board's queries and shapes, run through Outpost's own evaluator (the code the
 * worker and the relay run): what a person sees in each view and sort, and what a
 * device in "My tasks" replicates.
 */
import { describe, expect, it } from 'vitest'
import { runQuery, validateQuery, validateShape, type Row } from '@outpost/core'
import { tasksQuery, tasksShape, toTask } from '../src/task-queries'
import { newTask, type Task } from '../src/task'

function row(key: string, patch: Partial<Task>): Row {
  return { key, value: { ...newTask('untitled', 'Ada', 1_000), ...patch } }
}

const board: Row[] = [
  row('t1', { title: 'write docs', priority: 2, createdAt: 1_000, assignee: 'Ada' }),
  row('t2', { title: 'Fix bug', priority: 4, createdAt: 2_000, assignee: 'Grace' }),
  row('t3', { title: 'book room', priority: 2, createdAt: 3_000, assignee: 'Grace' }),
  row('t4', { title: 'Answer mail', priority: 1, createdAt: 4_000, assignee: '' }),
]

const keys = (rows: readonly Row[]): string[] => rows.map((r) => r.key)

describe('tasksQuery', () => {
  it('sorts by priority, most urgent first, newest first among equals', () => {
    expect(keys(runQuery(board, validateQuery(tasksQuery(null, 'priority'))))).toEqual(['t2', 't3', 't1', 't4'])
  })

  it('sorts by title and by creation time', () => {
    expect(keys(runQuery(board, validateQuery(tasksQuery(null, 'title'))))).toEqual(['t4', 't2', 't3', 't1'])
    expect(keys(runQuery(board, validateQuery(tasksQuery(null, 'created'))))).toEqual(['t4', 't3', 't2', 't1'])
  })

  it('shows only the given assignee in "My tasks"', () => {
    expect(keys(runQuery(board, validateQuery(tasksQuery('Grace', 'created'))))).toEqual(['t3', 't2'])
    expect(runQuery(board, validateQuery(tasksQuery('Nobody', 'priority')))).toEqual([])
  })
})

describe('tasksShape', () => {
  it('replicates the whole map for "All tasks"', () => {
    expect(validateShape(tasksShape('all', 'Ada'))).toEqual({ map: 'tasks' })
  })

  it('replicates exactly the tasks assigned to me for "My tasks"', () => {
    const shape = validateShape(tasksShape('mine', 'Grace'))
    expect(shape.map).toBe('tasks')
    expect(keys(runQuery(board, { where: shape.where! }))).toEqual(['t2', 't3'])
  })
})

describe('toTask', () => {
  it('shows a partial or foreign record as a complete task instead of failing', () => {
    expect(toTask({ title: 'only a title', status: 'archived', priority: 9 })).toEqual({
      title: 'only a title',
      status: 'todo',
      assignee: '',
      priority: 2,
      notes: '',
      createdAt: 0,
    })
  })
})

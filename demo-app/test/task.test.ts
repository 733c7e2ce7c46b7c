/** Task helpers: ids, defaults, and reading values written by anyone. */
import { describe, expect, it } from 'vitest'
import { DEFAULT_PRIORITY, asPriority, asStatus, likesCounterName, newTask, newTaskId } from '../src/task'

describe('newTaskId', () => {
  it('is derived only from the injected random bytes', () => {
    const zeros = (bytes: Uint8Array) => bytes.fill(0)
    expect(newTaskId(zeros)).toBe(newTaskId(zeros))
    expect(newTaskId((b) => b.fill(255))).not.toBe(newTaskId(zeros))
  })

  it('does not repeat across many real ids', () => {
    const ids = new Set(Array.from({ length: 2_000 }, () => newTaskId()))
    expect(ids.size).toBe(2_000)
  })
})

describe('newTask', () => {
  it('starts as a trimmed to-do of normal priority for its creator', () => {
    expect(newTask('  Ship it  ', 'Ada', 42)).toEqual({ title: 'Ship it', status: 'todo', assignee: 'Ada', priority: DEFAULT_PRIORITY, notes: '', createdAt: 42 })
  })
})

describe('asStatus / asPriority', () => {
  it('keeps known values and falls back for anything else', () => {
    expect(asStatus('done')).toBe('done')
    expect(asStatus('DONE')).toBe('todo')
    expect(asPriority(4)).toBe(4)
    expect(asPriority('4')).toBe(DEFAULT_PRIORITY)
  })
})

describe('likesCounterName', () => {
  it('gives each task its own counter', () => {
    expect(likesCounterName('t1')).not.toBe(likesCounterName('t2'))
  })
})

/** Task helpers: ids, defaults, and reading values written by anyone. */
import { describe, expect, it } from 'vitest'
import { DEFAULT_PRIORITY, asPriority, asStatus, formatLikers, likeAction, newTask, newTaskId } from '../src/task'

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

describe('likes', () => {
  it('toggle: a person who likes a task unlikes it with the next click', () => {
    expect(likeAction([], 'Kim')).toBe('like')
    expect(likeAction(['Kim', 'Lou'], 'Kim')).toBe('unlike')
    expect(likeAction(['Lou'], 'Kim')).toBe('like')
  })

  it('names the people who like a task', () => {
    expect(formatLikers([])).toBe('')
    expect(formatLikers(['Kim'])).toBe('Liked by Kim')
    expect(formatLikers(['Kim', 'Lou'])).toBe('Liked by Kim and Lou')
    expect(formatLikers(['Kim', 'Lou', 'Max'])).toBe('Liked by Kim, Lou and 1 other')
    expect(formatLikers(['Kim', 'Lou', 'Max', 'Ada'])).toBe('Liked by Kim, Lou and 2 others')
  })
})

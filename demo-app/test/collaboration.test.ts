/** What the header and the task badges show from presence: one avatar per person, and who is editing which task. */
import { describe, expect, it } from 'vitest'
import type { PresenceMember } from '@outpost/client'
import { editorsByTask, taskLockName, viewers, type BoardPresenceState } from '../src/collaboration'
import { formatEditors } from '../src/components/task-item'

function member(id: string, name: string, editing: string | null, self = false): PresenceMember<BoardPresenceState> {
  return { id, self, state: { name, editing }, lastSeen: 0 }
}

describe('presence on the board', () => {
  it('shows one avatar per person, this person first, tabs counted', () => {
    const list = viewers([member('1', 'Lou', null), member('2', 'Kim', null, true), member('3', 'Kim', null), member('4', '', null)])
    expect(list).toEqual([
      { name: 'Kim', self: true, tabs: 2 },
      { name: 'Guest', self: false, tabs: 1 },
      { name: 'Lou', self: false, tabs: 1 },
    ])
  })

  it('maps tasks to the other people editing them, never to this tab', () => {
    const editors = editorsByTask([member('1', 'Lou', 't1'), member('2', 'Kim', 't1', true), member('3', 'Max', 't1'), member('4', 'Lou', 't1'), member('5', 'Ada', 't2')])
    expect(editors.get('t1')).toEqual(['Lou', 'Max'])
    expect(editors.get('t2')).toEqual(['Ada'])
    expect(editors.has('t3')).toBe(false)
  })

  it('says who is editing in words, and names the lock after the task', () => {
    expect(formatEditors(['Lou'])).toBe('Lou is editing')
    expect(formatEditors(['Lou', 'Max'])).toBe('Lou and Max are editing')
    expect(formatEditors(['Lou', 'Max', 'Ada', 'Kim'])).toBe('Lou, Max and 2 others are editing')
    expect(taskLockName('abc')).toBe('task:abc')
  })
})

/** What the board tells a person when the relay refused their change for good. */
import { describe, expect, it } from 'vitest'
import { describeRejections, reasonInWords, type RejectedView } from '../src/rejections'

const titles: Record<string, string> = { t1: 'Plan the offsite' }
const titleOf = (id: string): string | undefined => titles[id]

function rejected(count: number, keys: RejectedView['keys'], code = 'FORBIDDEN'): RejectedView {
  return { count, lastError: { code, message: 'This write would put record t1 of map tasks outside what you may write (row filter)' }, keys }
}

describe('the notice of refused writes', () => {
  it('names the task and the reason in plain words, with the relay’s words as detail', () => {
    const notice = describeRejections(rejected(1, [{ map: 'tasks', key: 't1' }]), 0, titleOf)
    expect(notice?.text).toBe('Your change to “Plan the offsite” was not saved: the server’s rules do not allow it.')
    expect(notice?.detail).toMatch(/^FORBIDDEN: This write would put record t1/)
    expect(notice?.unseen).toBe(1)
  })

  it('shows nothing once dismissed, and counts only what came after', () => {
    expect(describeRejections(rejected(3, [{ map: 'tasks', key: 't1' }]), 3, titleOf)).toBeNull()
    const notice = describeRejections(rejected(5, [{ map: 'likes', key: 't1' }]), 3, titleOf)
    expect(notice?.text).toBe('Your like on “Plan the offsite” was not saved: the server’s rules do not allow it. (2 changes were not saved.)')
  })

  it('treats everything as new after the database was created again', () => {
    expect(describeRejections(rejected(1, [{ map: 'tasks', key: 't1' }]), 7, titleOf)?.unseen).toBe(1)
  })

  it('still says what happened when the task is no longer on this device', () => {
    expect(describeRejections(rejected(1, [{ map: 'tasks', key: 'gone' }], 'VALUE_TOO_LARGE'), 0, titleOf)?.text).toBe(
      'Your change to a task was not saved: it is too large to sync.',
    )
    expect(describeRejections(rejected(1, [{ map: 'notes', key: 'n1' }], 'INVALID_VALUE'), 0, titleOf)?.text).toBe('A change was not saved: the server cannot store it.')
    expect(reasonInWords('SOMETHING_NEW')).toBe('the server refused it')
  })
})

/** The like counter of a task: a CRDT counter, so likes given offline on two devices add up. */
import { useClient, useCounter } from '@outpost/client/react'
import { likesCounterName } from '../task'

/** Props of {@link LikeButton}. */
export interface LikeButtonProps {
  readonly taskId: string
}

/** A heart with the task's like count; each click adds one like. */
export function LikeButton({ taskId }: LikeButtonProps) {
  const client = useClient()
  const name = likesCounterName(taskId)
  const count = useCounter(name)
  return (
    <button
      type="button"
      className={`like${count > 0 ? ' like-liked' : ''}`}
      data-testid="task-like"
      data-count={count}
      aria-label={`Like (${count})`}
      title="Like"
      onClick={() => {
        client.counter(name).increment(1).catch(reportLikeFailed)
      }}
    >
      <svg viewBox="0 0 20 20" width="14" height="14" aria-hidden="true">
        <path
          d="M10 17s-6.5-3.9-6.5-8.6A3.6 3.6 0 0 1 10 6a3.6 3.6 0 0 1 6.5 2.4C16.5 13.1 10 17 10 17z"
          fill={count > 0 ? 'currentColor' : 'none'}
          stroke="currentColor"
          strokeWidth="1.6"
          strokeLinejoin="round"
        />
      </svg>
      <span data-testid="task-like-count">{count}</span>
    </button>
  )
}

/** A like that could not be stored is only logged: the count on screen simply does not move. */
function reportLikeFailed(error: unknown): void {
  console.error('Outpost demo: the like was not saved', error)
}

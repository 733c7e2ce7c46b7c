/**
 * The like toggle of a task: one like per person. Likes live in the OR map `likes` (task
 * id → the names of the people who like it; see `LIKES_MAP`), so the count is the number
 * of people, and the same person liking on two devices, even offline, counts once.
 */
import { useClient, useLiveResult } from '@outpost/client/react'
import { LIKES_MAP, formatLikers, likeAction } from '../task'

/** Props of {@link LikeButton}. */
export interface LikeButtonProps {
  readonly taskId: string
  /** The person using this device ('' when no name was chosen: liking needs one). */
  readonly me: string
}

const NOBODY: readonly string[] = []

/** A heart with the number of people who like the task; pressed when this person does. */
export function LikeButton({ taskId, me }: LikeButtonProps) {
  const client = useClient()
  const likes = client.orMap<string>(LIKES_MAP)
  // A failed subscription (the engine unreachable) is shown on the button, not thrown: one heart must not take the board down.
  const { value, error } = useLiveResult(likes.values(taskId))
  const likers = value ?? NOBODY
  const count = likers.length
  const liked = me !== '' && likers.includes(me)
  const who = formatLikers(likers)
  const hint = error ? `Likes are unavailable: ${error.message}` : me === '' ? 'Enter your name (top right) to like tasks' : who === '' ? 'Like' : who
  return (
    <button
      type="button"
      className={`like${liked ? ' like-liked' : ''}${count > 0 ? ' like-some' : ''}`}
      data-testid="task-like"
      data-count={count}
      aria-pressed={liked}
      aria-label={liked ? `Unlike (${count} ${count === 1 ? 'person likes' : 'people like'} this)` : `Like (${count} ${count === 1 ? 'person likes' : 'people like'} this)`}
      title={hint}
      disabled={me === '' || error !== undefined}
      onClick={() => {
        const write = likeAction(likers, me) === 'unlike' ? likes.remove(taskId, me) : likes.add(taskId, me)
        write.catch(reportLikeFailed)
      }}
    >
      <svg viewBox="0 0 20 20" width="14" height="14" aria-hidden="true">
        <path
          d="M10 17s-6.5-3.9-6.5-8.6A3.6 3.6 0 0 1 10 6a3.6 3.6 0 0 1 6.5 2.4C16.5 13.1 10 17 10 17z"
          fill={liked ? 'currentColor' : 'none'}
          stroke="currentColor"
          strokeWidth="1.6"
          strokeLinejoin="round"
        />
      </svg>
      <span data-testid="task-like-count">{count}</span>
    </button>
  )
}

/** A like that could not be stored locally is only logged: the button simply does not change. */
function reportLikeFailed(error: unknown): void {
  console.error('Outpost demo: the like was not saved', error)
}

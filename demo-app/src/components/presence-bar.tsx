/** The header's "who is here": one avatar per person viewing the board (this tab's person first). */
import type { PresenceMember } from '@outpost/client'
import { viewers, type BoardPresenceState } from '../collaboration'
import { Avatar } from './avatar'

/** Props of {@link PresenceBar}. */
export interface PresenceBarProps {
  readonly members: readonly PresenceMember<BoardPresenceState>[]
}

/** At most this many avatars; the rest are counted. */
const SHOWN = 5

/** Avatars of the people viewing the board, live from presence. */
export function PresenceBar({ members }: PresenceBarProps) {
  const people = viewers(members)
  if (people.length === 0) return null
  const shown = people.slice(0, SHOWN)
  const others = people.length - shown.length
  const label = people.map((p) => (p.self ? `${p.name} (you)` : p.name)).join(', ')
  return (
    <div className="presence" data-testid="presence" data-count={people.length} aria-label={`Viewing now: ${label}`} title={`Viewing now: ${label}`}>
      <span className="presence-label">Viewing</span>
      <ul className="presence-list">
        {shown.map((person) => (
          <li
            key={person.name}
            className={`presence-member${person.self ? ' presence-self' : ''}`}
            data-testid="presence-member"
            data-name={person.name}
            data-self={person.self}
            data-tabs={person.tabs}
          >
            <Avatar name={person.name} size="sm" />
          </li>
        ))}
        {others > 0 ? <li className="presence-more">+{others}</li> : null}
      </ul>
    </div>
  )
}

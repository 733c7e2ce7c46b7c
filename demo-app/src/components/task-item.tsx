/**
 * One task on the board, every field edited in place. Each control writes only its own
 * field, so when two people change different fields of the same task at the same time
 * (even offline) both changes survive.
 */
import { memo } from 'react'
import { PRIORITIES, STATUSES, type EditableField, type Task } from '../task'
import { Avatar } from './avatar'
import { EditableText } from './editable-text'
import { LikeButton } from './like-button'

/** Props of {@link TaskItem}. */
export interface TaskItemProps {
  readonly id: string
  readonly task: Task
  /** True when this task is assigned to the person using this device. */
  readonly mine: boolean
  /** The person using this device ('' before they chose a name): the one whose like the heart toggles. */
  readonly me: string
  readonly onEdit: (id: string, field: EditableField, value: string | number) => void
  readonly onDelete: (id: string) => void
  /** The fencing token of the editing lock this tab holds on the task, or null. */
  readonly lockToken: number | null
  /** Other people editing this task right now (from presence). */
  readonly editors: readonly string[]
  /** The person started editing the title or notes. */
  readonly onEditStart: (id: string) => void
  /** The person left the title or notes. */
  readonly onEditEnd: (id: string) => void
}

/** A task card: title and notes on the left, status, priority, assignee, likes and delete on the right. */
export const TaskItem = memo(function TaskItem({ id, task, mine, me, onEdit, onDelete, lockToken, editors, onEditStart, onEditEnd }: TaskItemProps) {
  const editedElsewhere = lockToken === null && editors.length > 0
  return (
    <li
      className={`task task-${task.status}${lockToken !== null ? ' task-editing' : ''}${editedElsewhere ? ' task-edited-elsewhere' : ''}`}
      data-testid="task-item"
      data-task-id={id}
      data-title={task.title}
      data-status={task.status}
      data-assignee={task.assignee}
      data-priority={task.priority}
    >
      {/* Drawn over the card's top edge (absolutely positioned): taking or losing the lock never moves the card. */}
      {lockToken !== null ? (
        <span className="lock-badge lock-badge-mine" data-testid="lock-badge" data-holder="me" data-token={lockToken} title="Others see that you are editing this task">
          <LockIcon />
          You are editing
        </span>
      ) : editedElsewhere ? (
        <span className="lock-badge lock-badge-other" data-testid="lock-badge" data-holder={editors.join(', ')}>
          <LockIcon />
          {formatEditors(editors)}
        </span>
      ) : null}
      <div className="task-main">
        <EditableText
          className="task-title"
          testId="task-title"
          ariaLabel="Title"
          placeholder="Untitled task"
          value={task.title}
          onCommit={(value) => onEdit(id, 'title', value)}
          onEditStart={() => onEditStart(id)}
          onEditEnd={() => onEditEnd(id)}
        />
        <EditableText
          className="task-notes"
          testId="task-notes"
          ariaLabel="Notes"
          placeholder="Add notes…"
          multiline
          value={task.notes}
          onCommit={(value) => onEdit(id, 'notes', value)}
          onEditStart={() => onEditStart(id)}
          onEditEnd={() => onEditEnd(id)}
        />
      </div>
      <div className="task-meta">
        <select
          className={`pill pill-status status-${task.status}`}
          data-testid="task-status"
          aria-label="Status"
          value={task.status}
          onChange={(event) => onEdit(id, 'status', event.target.value)}
        >
          {STATUSES.map((status) => (
            <option key={status.value} value={status.value}>
              {status.label}
            </option>
          ))}
        </select>
        <select
          className={`pill pill-priority priority-${task.priority}`}
          data-testid="task-priority"
          aria-label="Priority"
          value={task.priority}
          onChange={(event) => onEdit(id, 'priority', Number(event.target.value))}
        >
          {PRIORITIES.map((priority) => (
            <option key={priority.value} value={priority.value}>
              {priority.label}
            </option>
          ))}
        </select>
        <div className={`assignee${mine ? ' assignee-me' : ''}`}>
          <Avatar name={task.assignee} size="sm" />
          <EditableText
            className="assignee-input"
            testId="task-assignee"
            ariaLabel="Assignee"
            placeholder="Unassigned"
            list="known-people"
            value={task.assignee}
            onCommit={(value) => onEdit(id, 'assignee', value.trim())}
          />
        </div>
        <LikeButton taskId={id} me={me} />
        <button type="button" className="icon-button task-delete" data-testid="task-delete" aria-label={`Delete “${task.title}”`} title="Delete task" onClick={() => onDelete(id)}>
          <svg viewBox="0 0 20 20" width="16" height="16" aria-hidden="true">
            <path d="M7 3h6m-9 3h12m-1.5 0-.7 10.1a1.5 1.5 0 0 1-1.5 1.4H7.7a1.5 1.5 0 0 1-1.5-1.4L5.5 6" fill="none" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" strokeLinejoin="round" />
          </svg>
        </button>
      </div>
    </li>
  )
})

/** "Kim is editing", "Kim and Lou are editing", "Kim, Lou and 2 others are editing". */
export function formatEditors(names: readonly string[]): string {
  if (names.length === 1) return `${names[0]} is editing`
  if (names.length === 2) return `${names[0]} and ${names[1]} are editing`
  return `${names[0]}, ${names[1]} and ${names.length - 2} other${names.length === 3 ? '' : 's'} are editing`
}

function LockIcon() {
  return (
    <svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true">
      <rect x="3" y="7" width="10" height="7" rx="1.5" fill="none" stroke="currentColor" strokeWidth="1.5" />
      <path d="M5.5 7V5a2.5 2.5 0 0 1 5 0v2" fill="none" stroke="currentColor" strokeWidth="1.5" />
    </svg>
  )
}

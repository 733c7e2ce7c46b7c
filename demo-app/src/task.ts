/**
 * The board's data: one `tasks` map whose records are tasks, and one OR map of likers
 * per task. Each task field is its own last-writer-wins register, so two people editing
 * different fields of one task both keep their edit.
 */

/** The name of the map that holds the tasks. */
export const TASKS_MAP = 'tasks'

/** Where a task is on the board. */
export type TaskStatus = 'todo' | 'doing' | 'done'

/** The statuses in board order, with their labels. */
export const STATUSES: readonly { readonly value: TaskStatus; readonly label: string }[] = [
  { value: 'todo', label: 'To do' },
  { value: 'doing', label: 'In progress' },
  { value: 'done', label: 'Done' },
]

/** Priorities are numbers so that sorting by priority is a plain numeric `orderBy`. */
export const PRIORITIES: readonly { readonly value: number; readonly label: string }[] = [
  { value: 4, label: 'Urgent' },
  { value: 3, label: 'High' },
  { value: 2, label: 'Normal' },
  { value: 1, label: 'Low' },
]

/** The priority a new task gets. */
export const DEFAULT_PRIORITY = 2

/** A task as stored (a type alias, not an interface, so it is a plain record of values). */
export type Task = {
  title: string
  status: TaskStatus
  assignee: string
  priority: number
  notes: string
  /** Creation time, ms since epoch (the "created" sort). */
  createdAt: number
}

/** The fields a person edits in place; each edit writes only its own field. */
export type EditableField = 'title' | 'status' | 'assignee' | 'priority' | 'notes'

/** A new task: `now` and `id` are given so callers (and tests) control time and randomness. */
export function newTask(title: string, assignee: string, now: number): Task {
  return { title: title.trim(), status: 'todo', assignee, priority: DEFAULT_PRIORITY, notes: '', createdAt: now }
}

/**
 * The OR map (add-wins set per key) that holds likes: key = task id, values = the names
 * of the people who like it. A like is one per person because a set holds each name once:
 * the same person liking on two devices, even offline, merges into one like, and the count
 * shown is the number of people. (A PN counter would count every click on every device.)
 * Unliking removes the adds this device has seen, so an unlike and a like made at the
 * same time on two devices end liked (add-wins).
 */
export const LIKES_MAP = 'likes'

/** What clicking the like button does for `me` given the current likers. */
export function likeAction(likers: readonly string[], me: string): 'like' | 'unlike' {
  return likers.includes(me) ? 'unlike' : 'like'
}

/** "Liked by Kim", "Liked by Kim and Lou", "Liked by Kim, Lou and 2 others"; '' for nobody. */
export function formatLikers(likers: readonly string[]): string {
  if (likers.length === 0) return ''
  if (likers.length === 1) return `Liked by ${likers[0]}`
  if (likers.length === 2) return `Liked by ${likers[0]} and ${likers[1]}`
  const others = likers.length - 2
  return `Liked by ${likers[0]}, ${likers[1]} and ${others} other${others === 1 ? '' : 's'}`
}

/**
 * A short random id. Uses `crypto.getRandomValues`, which (unlike `randomUUID`) also
 * exists on pages that are not a secure context, e.g. the demo opened on a LAN address.
 */
export function newTaskId(random: (bytes: Uint8Array) => Uint8Array = (bytes) => crypto.getRandomValues(bytes)): string {
  const bytes = random(new Uint8Array(10))
  let id = 't'
  for (const byte of bytes) id += byte.toString(36).padStart(2, '0')
  return id
}

/** Reads a status that may come from an older or foreign writer, falling back to 'todo'. */
export function asStatus(value: unknown): TaskStatus {
  return value === 'doing' || value === 'done' ? value : 'todo'
}

/** Reads a priority, falling back to the default for anything that is not a known level. */
export function asPriority(value: unknown): number {
  return typeof value === 'number' && PRIORITIES.some((p) => p.value === value) ? value : DEFAULT_PRIORITY
}

/** How the list is sorted. */
export type SortKey = 'priority' | 'title' | 'created'

/** The sort choices, with their labels. */
export const SORTS: readonly { readonly value: SortKey; readonly label: string }[] = [
  { value: 'priority', label: 'Priority' },
  { value: 'title', label: 'Title' },
  { value: 'created', label: 'Newest' },
]

/**
 * The board's schema, shared by the app and the relay: the app passes it to
 * `createClient({ schemas })` (typed, validated maps) and the demo relay loads this same
 * module (`outpost-server --schema demo-app/src/schema.ts`, which `npm start` does), so a
 * client that skips the SDK still cannot store a task the board could not show.
 *
 * The module imports only zod (and types), so Node can load it in the relay as is.
 */
import type { SchemaSet } from '@outpost/client'
import { z } from 'zod'

/** A task as the relay accepts it (see `task.ts` for the board's own type). */
export const taskSchema = z.object({
  title: z.string().min(1, 'a task needs a title').max(500),
  status: z.enum(['todo', 'doing', 'done']),
  assignee: z.string().max(200),
  priority: z.number().int().min(1).max(4),
  notes: z.string().max(10_000),
  createdAt: z.number().int().nonnegative(),
})

/** The demo's schemas by map name; `tasks` is at version 1 (no migrations yet). */
export const schemas = {
  tasks: { version: 1, schema: taskSchema },
} satisfies SchemaSet

/**
 * Type tests of the public surface (checked by `tsc -p packages/client/tsconfig.test.json`):
 * record types flow from the map's type parameter or from its schema.
 */
import { expectTypeOf } from 'vitest'
import { z } from 'zod'
import { createClient, defineSchemas, type ClientInspectorSnapshot, type ClientStatus, type OutpostError, type Row, type WriteHandle, type WriteProgress } from '../src/index'
import { useCounter, useLiveResult, useQuery, useQueryResult, useRecord, useStatus } from '../src/react/index'
import { mountInspector } from '../src/devtools/index'

interface Todo {
  title: string
  done: boolean
}

const client = createClient({ name: 'types', url: 'ws://localhost:8787', auth: async () => 'token' })

// A declared record type (an interface, not only a type alias).
const todos = client.map<Todo>('todos')
expectTypeOf(todos.set('t1', { title: 'x', done: false })).toEqualTypeOf<WriteHandle>()
expectTypeOf(todos.get('t1')).resolves.toEqualTypeOf<Todo | undefined>()
expectTypeOf(todos.update).parameter(1).toEqualTypeOf<Partial<Todo>>()
// @ts-expect-error a field of the wrong type
todos.set('t1', { title: 1, done: false })
// @ts-expect-error a missing field
todos.set('t1', { title: 'x' })
expectTypeOf(todos.query().getSnapshot()).toEqualTypeOf<readonly Row<Todo>[] | undefined>()
todos.query({ where: { eq: ['done', false] }, orderBy: [['title', 'asc']], limit: 50 }).subscribe((rows) => {
  expectTypeOf(rows).toEqualTypeOf<readonly Row<Todo>[]>()
  expectTypeOf(rows[0]!.value.title).toEqualTypeOf<string>()
})
// @ts-expect-error not a predicate
todos.query({ where: { equals: ['done', false] } })

// A schema: the record type is the schema's output; writes take its input.
const schema = z.object({ title: z.string(), done: z.boolean().default(false) })
const checked = client.map('checked', { schema })
expectTypeOf(checked.get('k')).resolves.toEqualTypeOf<{ title: string; done: boolean } | undefined>()
checked.set('k', { title: 'done is optional on input' })
// @ts-expect-error title is required
checked.set('k', { done: true })

// Write handles.
const handle = todos.delete('t1')
expectTypeOf(handle.concern).toEqualTypeOf<WriteProgress>()
expectTypeOf(handle.persisted).toEqualTypeOf<Promise<void>>()

// Counters, OR maps, shapes, status.
expectTypeOf(client.counter('likes').getSnapshot()).toEqualTypeOf<number | undefined>()
const tags = client.orMap<string>('tags')
tags.add('t1', 'red')
// @ts-expect-error values of the declared type only
tags.add('t1', 42)
expectTypeOf(tags.values('t1').getSnapshot()).toEqualTypeOf<readonly string[] | undefined>()
expectTypeOf(client.shape({ map: 'todos', where: { eq: ['owner', 'me'] }, fields: ['title'] }).id).toEqualTypeOf<Promise<string>>()
expectTypeOf(client.status.get()).toEqualTypeOf<ClientStatus>()
expectTypeOf(client.status.get().mode).toEqualTypeOf<'shared-worker' | 'leader-tab' | 'in-page'>()

// Hooks.
expectTypeOf(useQuery(todos)).toEqualTypeOf<readonly Row<Todo>[]>()
expectTypeOf(useRecord(todos, 't1')).toEqualTypeOf<Todo | undefined>()
expectTypeOf(useStatus()).toEqualTypeOf<ClientStatus>()
expectTypeOf(useCounter('likes')).toEqualTypeOf<number>()
// The error path: a typed error beside the rows, or (useQuery) thrown to an error boundary.
expectTypeOf(useQueryResult(todos).rows).toEqualTypeOf<readonly Row<Todo>[]>()
expectTypeOf(useQueryResult(todos).error).toEqualTypeOf<OutpostError | undefined>()
expectTypeOf(useLiveResult(client.counter('likes')).value).toEqualTypeOf<number | undefined>()
expectTypeOf(todos.query().getError()).toEqualTypeOf<OutpostError | undefined>()
createClient({ name: 'types', onError: (error) => expectTypeOf(error).toEqualTypeOf<OutpostError>() })

// One schema module for app and relay: `client.map(name)` of a map in it is typed by its schema.
const appSchemas = defineSchemas({
  tasks: { version: 2, schema: z.object({ title: z.string(), priority: z.number() }), migrations: { 1: (r) => ({ ...r, priority: 1 }) } },
})
const typed = createClient({ name: 'typed', schemas: appSchemas })
expectTypeOf(typed.map('tasks').get('k')).resolves.toEqualTypeOf<{ title: string; priority: number } | undefined>()
typed.map('tasks').update('k', { priority: 2 })
// @ts-expect-error priority is a number
typed.map('tasks').set('k', { title: 'x', priority: 'high' })
// Maps outside the set keep the untyped overloads.
expectTypeOf(typed.map<Todo>('todos').get('k')).resolves.toEqualTypeOf<Todo | undefined>()
// The inspector: read-only snapshots, and the devtools panel over anything with an `inspector`.
expectTypeOf(client.inspector.snapshot()).resolves.toEqualTypeOf<ClientInspectorSnapshot>()
expectTypeOf(client.inspector.subscribe((s) => expectTypeOf(s.connection.state).toEqualTypeOf<ClientStatus['connection']>())).toEqualTypeOf<() => void>()
expectTypeOf(mountInspector(client, { launcher: false, onChange: (open) => expectTypeOf(open).toEqualTypeOf<boolean>() }).toggle()).toEqualTypeOf<boolean>()
// @ts-expect-error the panel needs a client (or anything with an inspector)
mountInspector({})

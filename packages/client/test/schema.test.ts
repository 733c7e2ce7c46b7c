/**
 * One schema module for the app and the relay, seen from the SDK against a real relay:
 * `createClient({ schemas })` types and validates `client.map(name)`, writes carry the
 * schema's version, a write the relay refuses by schema (from a client that skipped the
 * check) comes back as a rejected write and is taken back locally, records of an older
 * version are upgraded as they are read and written, and an app older than the relay's
 * schema is told SCHEMA_OUTDATED and keeps its local data and pending writes.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { z } from 'zod'
import { defineSchemas, SchemaValidationError, type RecordValue } from '@outpost/core'
import { createRelay, type Relay } from '@outpost/server-lite'
import { createClient, sharedWorkerName, type OutpostClient } from '../src/index'
import { freshDb, until } from './helpers'

const v1 = defineSchemas({ tasks: { version: 1, schema: z.object({ title: z.string().min(1), urgent: z.boolean() }) } })
const v2 = defineSchemas({
  tasks: {
    version: 2,
    schema: z.object({ title: z.string().min(1), priority: z.number().int().min(1).max(3) }),
    migrations: { 1: ({ urgent, ...rest }: RecordValue) => ({ ...rest, priority: urgent === true ? 3 : 1 }) },
  },
})

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relayWith(schemas: typeof v2): Promise<Relay> {
  const dataDir = await mkdtemp(join(tmpdir(), 'outpost-client-schema-'))
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent' }, { schemas })
  cleanups.push(async () => {
    await relay.close()
    await rm(dataDir, { recursive: true, force: true })
  })
  return relay
}

function open<S extends typeof v1 | typeof v2 | undefined>(db: ReturnType<typeof freshDb>, schemas: S, url?: string, offline = false) {
  const client = createClient({
    name: db.name,
    mode: 'in-page',
    offline,
    engine: { indexedDB: db.indexedDB, WebSocket: WebSocket as never },
    ...(url === undefined ? {} : { url }),
    ...(schemas === undefined ? {} : { schemas }),
  })
  let closed = false
  const close = async () => {
    if (!closed) await client.close()
    closed = true
  }
  cleanups.push(close)
  return { client: client as unknown as OutpostClient<NonNullable<S>>, close }
}

describe('schemas shared by the app and the relay', () => {
  it('validates, versions writes, and shows a write the relay refuses by schema as a rejected write', async () => {
    const relay = await relayWith(v2)
    const { client } = open(freshDb('schema'), v2, relay.url)
    const tasks = client.map('tasks')
    const ok = tasks.set('a', { title: 'ship it', priority: 2 })
    await ok.persisted
    expect(await tasks.get('a')).toEqual({ title: 'ship it', priority: 2, _v: 2 })
    await expect(tasks.set('b', { title: '', priority: 2 })).rejects.toBeInstanceOf(SchemaValidationError)

    // An app that skips the SDK's check (no schemas): the relay refuses; the SDK reports a rejected write and takes it back.
    const { client: loose } = open(freshDb('schema-loose'), undefined, relay.url)
    const raw = loose.map<RecordValue>('tasks')
    const bad = raw.set('c', { title: 'no priority', _v: 2 })
    await bad
    const refusal = await bad.persisted.then(() => undefined, (error: unknown) => error)
    expect(refusal).toBeInstanceOf(SchemaValidationError)
    expect((refusal as SchemaValidationError).details?.['path']).toBe('priority')
    expect(bad.concern).toBe('rejected')
    await until(async () => (await raw.get('c')) === undefined, 5000, 'the refused write taken back')
    await until(() => loose.status.get().rejected.count === 1, 5000, 'the rejection in status')
  })

  it('upgrades older local records as they are read and written', async () => {
    const relay = await relayWith(v2)
    const db = freshDb('schema-upgrade')
    // The app at v1, offline, stores a v1 record.
    const old = open(db, v1, relay.url, true)
    await old.client.map('tasks').set('k', { title: 'old', urgent: true })
    await old.close()
    // The same database under the v2 app: read upgraded, written upgraded, accepted by the relay.
    const { client } = open(db, v2, relay.url, true)
    const tasks = client.map('tasks')
    expect(await tasks.get('k')).toEqual({ title: 'old', priority: 3, _v: 2 })
    const rows = await tasks.query().get()
    expect(rows.map((r) => r.value)).toEqual([{ title: 'old', priority: 3, _v: 2 }])
    const edit = tasks.update('k', { title: 'new' })
    await edit
    expect(await tasks.get('k')).toEqual({ title: 'new', priority: 3, _v: 2 })
    // The v1 set still pending from the old app is upgraded by the relay; the v2 write lands on top.
    await client.setOffline(false)
    await edit.persisted
    const { client: reader } = open(freshDb('schema-reader'), v2, relay.url)
    reader.sync('tasks')
    let copy: unknown
    await until(async () => (copy = await reader.map('tasks').get('k')) !== undefined, 10_000, 'the relay copy')
    expect(copy).toEqual({ title: 'new', priority: 3, _v: 2 })
  })

  it('an app older than the relay is told SCHEMA_OUTDATED and keeps its local data and pending writes', async () => {
    const relay = await relayWith(v2)
    const { client } = open(freshDb('schema-old'), v1, relay.url, true)
    const tasks = client.map('tasks')
    await tasks.set('mine', { title: 'written offline', urgent: false })
    await client.setOffline(false)
    await until(() => client.status.get().lastError?.code === 'SCHEMA_OUTDATED', 10_000, 'SCHEMA_OUTDATED in status')
    const status = client.status.get()
    expect(status.lastError?.details).toMatchObject({ map: 'tasks', client: 1, relay: 2, outdated: 'client' })
    expect(status.connection).not.toBe('live')
    expect(status.pendingWrites).toBe(1)
    expect(await tasks.get('mine')).toEqual({ title: 'written offline', urgent: false })
  })
})

describe('the SharedWorker name', () => {
  it('changes with the app\'s schema versions, so tabs of two deploys never share a worker', () => {
    expect(sharedWorkerName('app')).toBe(sharedWorkerName('app', {}))
    expect(sharedWorkerName('app', { tasks: 1 })).not.toBe(sharedWorkerName('app'))
    expect(sharedWorkerName('app', { tasks: 1 })).not.toBe(sharedWorkerName('app', { tasks: 2 }))
    expect(sharedWorkerName('app', { a: 1, b: 2 })).toBe(sharedWorkerName('app', { b: 2, a: 1 }))
  })
})

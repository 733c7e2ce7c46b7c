/**
 * v1 → v2 of a map schema, at rest and on the wire: `schema check` finds planted invalid
 * records (counts and sample keys) and the outdated ones; `schema migrate` upgrades the
 * outdated ones through the migration chain and resumes where it stopped; a relay on v2
 * serves old records as v2 (upgraded at start), upgrades a v1 record a raw client writes,
 * refuses a v1 client with SCHEMA_OUTDATED and a client newer than itself with a message
 * naming the relay as the side to upgrade. The commands run as `outpost-server schema …`
 * with the exit codes an operator's script relies on.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ErrorMessage, RecordValue } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { createRelay, parseConfig, runSchemaCommand, type Relay, type SchemaDrift, type SchemaMigration } from '../src/index'
import { TestClient, tempDir } from './helpers/client'
import { set } from './helpers/changes'
import { LocalShape } from './helpers/replica'
import { RELAY_NODE_ARGS } from './helpers/relay-command'

const SCHEMA_V2 = fileURLToPath(new URL('./fixtures/tasks-schema-v2.ts', import.meta.url))
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relayOn(dataDir: string, schema?: string): Promise<Relay> {
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent', ...(schema === undefined ? {} : { schema }) })
  cleanups.push(() => relay.close())
  return relay
}

/** Writes v1 tasks (and two records that are invalid in any version) through a relay without a schema. */
async function plantV1(dataDir: string, count: number): Promise<void> {
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent' })
  const { client } = await TestClient.connect(relay.url)
  const changes = Array.from({ length: count }, (_, i) => set(client.clock, 'tasks', `t${String(i).padStart(3, '0')}`, { title: `task ${i}`, urgent: i % 2 === 0 }))
  changes.push(set(client.clock, 'tasks', 'bad-empty', { title: '', urgent: false }), set(client.clock, 'tasks', 'bad-type', { title: 7, urgent: true }))
  const ack = await client.ops(changes)
  expect(ack.results.every((r) => r === null)).toBe(true)
  await client.close()
  await relay.close()
}

async function stored(url: string, options = {}): Promise<Map<string, RecordValue | undefined>> {
  const { client } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  const shape = new LocalShape({ map: 'tasks' })
  await shape.sync(client, false)
  return new Map([...shape.states.keys()].map((key) => [key, shape.view(key)]))
}

describe('schema v1 → v2', () => {
  it('schema check reports planted invalid records; schema migrate upgrades the rest and resumes where it stopped', async () => {
    const dir = tempDir()
    cleanups.push(dir.remove)
    await plantV1(dir.path, 30)
    const config = parseConfig({ dataDir: dir.path, schema: SCHEMA_V2 })

    const before = await runSchemaCommand('check', config)
    expect(before.exitCode).toBe(1)
    const drift = (before.report as SchemaDrift[])[0] as SchemaDrift
    expect(drift).toMatchObject({ map: 'tasks', version: 2, records: 32, valid: 0, outdated: 30, invalid: 2, deleted: 0 })
    expect(drift.samples.map((s) => s.key).sort()).toEqual(['bad-empty', 'bad-type'])
    expect(drift.samples.find((s) => s.key === 'bad-empty')?.path).toBe('title')
    expect(before.lines.join('\n')).toContain('2 stored record(s) do not validate')

    // Stopped after one page of 10: not done, and it says so.
    const first = await runSchemaCommand('migrate', config, { pageSize: 10, maxPages: 1 })
    const partial = (first.report as SchemaMigration[])[0] as SchemaMigration
    expect(partial).toMatchObject({ done: false, resumed: false, scanned: 10 })
    expect(first.lines[0]).toContain('run again to resume')
    // Run again: it resumes after the first page and finishes; the two invalid records fail with their reason.
    const second = await runSchemaCommand('migrate', config, { pageSize: 10 })
    const rest = (second.report as SchemaMigration[])[0] as SchemaMigration
    expect(rest).toMatchObject({ done: true, resumed: true, scanned: 22 })
    expect(partial.upgraded + rest.upgraded).toBe(30)
    expect(partial.failedCount + rest.failedCount).toBe(2)
    // Done: a third run has nothing to do.
    expect(((await runSchemaCommand('migrate', config)).report as SchemaMigration[])[0]).toMatchObject({ done: true, scanned: 0, upgraded: 0 })

    const after = (await runSchemaCommand('check', config)).report as SchemaDrift[]
    expect(after[0]).toMatchObject({ records: 32, valid: 30, outdated: 0, invalid: 2 })

    // A v2 relay serves them as v2.
    const relay = await relayOn(dir.path, SCHEMA_V2)
    const records = await stored(relay.url, { schemas: { tasks: 2 } })
    expect(records.get('t000')).toEqual({ title: 'task 0', priority: 3, _v: 2 })
    expect(records.get('t001')).toEqual({ title: 'task 1', priority: 1, _v: 2 })
  })

  it('a v2 relay upgrades old records at start and a v1 record written by a raw client, and refuses clients of another version', async () => {
    const dir = tempDir()
    cleanups.push(dir.remove)
    await plantV1(dir.path, 5)
    const relay = await relayOn(dir.path, SCHEMA_V2)
    // Upgraded at rest by the relay itself (the same job as schema migrate).
    await expect.poll(async () => (await stored(relay.url)).get('t004'), { timeout: 10_000 }).toEqual({ title: 'task 4', priority: 3, _v: 2 })

    const { client: raw } = await TestClient.connect(relay.url)
    cleanups.push(() => raw.close())
    const ack = await raw.ops([set(raw.clock, 'tasks', 'from-old-app', { title: 'old', urgent: true })])
    expect(ack.results).toEqual([null])
    expect((await stored(relay.url)).get('from-old-app')).toEqual({ title: 'old', priority: 3, _v: 2 })

    const old = await TestClient.open(relay.url)
    old.hello({ schemas: { tasks: 1 } })
    const refusal = (await old.next((m) => m.type === 'error')) as ErrorMessage
    expect(refusal.error.code).toBe('SCHEMA_OUTDATED')
    expect(refusal.error.details).toMatchObject({ map: 'tasks', client: 1, relay: 2, outdated: 'client' })
    expect((await old.closed).code).toBe(4010)

    const newer = await TestClient.open(relay.url)
    newer.hello({ schemas: { tasks: 3 } })
    const ahead = (await newer.next((m) => m.type === 'error')) as ErrorMessage
    expect(ahead.error.code).toBe('SCHEMA_OUTDATED')
    expect(ahead.error.details).toMatchObject({ outdated: 'relay' })
    expect(ahead.error.message).toContain('Deploy the relay')
    await newer.closed
  })
})

describe('outpost-server schema (the CLI)', () => {
  it('check exits 1 naming the planted keys, migrate upgrades, check without --schema says what to pass', async () => {
    const dir = tempDir()
    cleanups.push(dir.remove)
    await plantV1(dir.path, 3)
    const cli = (...args: string[]) => spawnSync(process.execPath, [...RELAY_NODE_ARGS, 'schema', ...args], { encoding: 'utf8', timeout: 60_000 })
    const check = cli('check', '--data-dir', dir.path, '--schema', SCHEMA_V2)
    expect(check.status).toBe(1)
    expect(check.stdout).toContain('tasks (schema version 2): 5 records, 0 valid, 3 outdated (schema migrate upgrades them), 2 invalid, 0 deleted')
    expect(check.stdout).toContain('invalid "bad-empty" at title')
    const migrate = cli('migrate', '--data-dir', dir.path, '--schema', SCHEMA_V2)
    expect(migrate.stdout).toContain('tasks (schema version 2): done; 5 scanned, 3 upgraded, 2 failed')
    expect(migrate.status).toBe(1)
    const missing = cli('check', '--data-dir', dir.path)
    expect(missing.status).toBe(1)
    expect(missing.stdout).toContain('pass --schema <module>')
    const unknown = cli('frobnicate')
    expect(unknown.status).toBe(1)
    expect(unknown.stderr).toContain('schema check')
  }, 120_000)
})

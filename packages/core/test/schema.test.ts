/**
 * The schema logic both sides run: validating a record (the failing path named), the
 * migration chain, checking a loaded schema set, version negotiation, and the delta that
 * stores an upgrade.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  ConfigError,
  Hlc,
  SchemaOutdatedError,
  SchemaValidationError,
  assertSchemaSet,
  checkRecord,
  checkSchemaVersions,
  defineSchemas,
  lwwUpdateState,
  lwwView,
  mergeLww,
  migrateRecord,
  stampsAfter,
  upgradeDelta,
  type RecordValue,
  type ReplicaId,
} from '../src/index'

const v2 = defineSchemas({
  tasks: {
    version: 2,
    schema: z.object({ title: z.string().min(1), priority: z.number().int() }),
    migrations: { 1: (r: RecordValue) => ({ title: r['title'] ?? '', priority: r['urgent'] === true ? 3 : 1 }) },
  },
})

function caught(run: () => unknown): unknown {
  try {
    run()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

describe('checkRecord', () => {
  it('names the failing path and lists the issues', () => {
    const error = caught(() => checkRecord(v2.tasks, { title: '', priority: 1, _v: 2 }, 'tasks/t1'))
    expect(error).toBeInstanceOf(SchemaValidationError)
    expect((error as SchemaValidationError).details?.['path']).toBe('title')
    expect((error as SchemaValidationError).message).toContain('tasks/t1')
    expect((error as SchemaValidationError).message).toContain('at title')
  })

  it('upgrades an older record before validating it, and passes a deleted record', () => {
    expect(checkRecord(v2.tasks, { title: 'a', urgent: true }, 'tasks/t1').upgraded).toEqual({ title: 'a', priority: 3, _v: 2 })
    expect(checkRecord(v2.tasks, { title: 'a', priority: 2, _v: 2 }, 'tasks/t1').upgraded).toBeUndefined()
    expect(checkRecord(v2.tasks, undefined, 'tasks/t1').upgraded).toBeUndefined()
  })

  it('refuses a record from a newer schema and a version field that is not a version', () => {
    expect(caught(() => checkRecord(v2.tasks, { title: 'a', priority: 1, _v: 3 }, 't'))).toBeInstanceOf(SchemaValidationError)
    const bad = caught(() => checkRecord(v2.tasks, { title: 'a', priority: 1, _v: 'x' }, 't')) as SchemaValidationError
    expect(bad.details?.['path']).toBe('_v')
  })

  it('refuses an async validator with a ConfigError instead of guessing', () => {
    const asyncSchema = { version: 1, schema: z.object({ a: z.string() }).refine(async () => true) }
    expect(caught(() => checkRecord(asyncSchema, { a: 'x' }, 'm/k'))).toBeInstanceOf(ConfigError)
  })
})

describe('migrateRecord', () => {
  it('runs the chain step by step and reports what it did', () => {
    const v3 = {
      version: 3,
      schema: z.object({}),
      migrations: { 1: (r: RecordValue) => ({ ...r, b: 1 }), 2: (r: RecordValue) => ({ ...r, c: (r['b'] as number) + 1 }) },
    }
    expect(migrateRecord(v3, { a: 0 })).toEqual({ record: { a: 0, b: 1, c: 2, _v: 3 }, from: 1, changed: true })
    expect(migrateRecord(v3, { a: 0, b: 5, _v: 2 })).toEqual({ record: { a: 0, b: 5, c: 6, _v: 3 }, from: 2, changed: true })
  })

  it('turns a migration that throws into a SchemaValidationError naming the step', () => {
    const broken = { version: 2, schema: z.object({}), migrations: { 1: () => { throw new Error('boom') } } }
    const error = caught(() => migrateRecord(broken, { a: 1 }, 'm/k')) as SchemaValidationError
    expect(error).toBeInstanceOf(SchemaValidationError)
    expect(error.message).toContain('from version 1 to 2')
  })
})

describe('assertSchemaSet', () => {
  it('accepts a well-formed set and lists every problem of a bad one', () => {
    expect(() => assertSchemaSet(v2, 'schemas.ts')).not.toThrow()
    const error = caught(() => assertSchemaSet({ a: { version: 3, schema: z.object({}), migrations: { 1: (r: RecordValue) => r } }, b: { version: 0, schema: {} } }, 'schemas.ts')) as ConfigError
    expect(error).toBeInstanceOf(ConfigError)
    expect(error.details?.['issues']).toEqual([
      expect.stringContaining('migrations[2]'),
      expect.stringContaining('map b: schema must be a Standard Schema'),
      expect.stringContaining('map b: version must be'),
    ])
  })
})

describe('checkSchemaVersions', () => {
  it('says which side is outdated', () => {
    expect(checkSchemaVersions({ tasks: 2 }, v2)).toBeUndefined()
    expect(checkSchemaVersions(undefined, v2)).toBeUndefined()
    expect(checkSchemaVersions({ other: 7 }, v2)).toBeUndefined()
    const old = checkSchemaVersions({ tasks: 1 }, v2)
    expect(old).toBeInstanceOf(SchemaOutdatedError)
    expect(old?.details).toMatchObject({ map: 'tasks', client: 1, relay: 2, outdated: 'client' })
    expect(checkSchemaVersions({ tasks: 3 }, v2)?.details).toMatchObject({ outdated: 'relay' })
  })
})

describe('upgradeDelta', () => {
  const clock = new Hlc({ replicaId: 'relay' as ReplicaId, now: () => 1_000 })
  const base = lwwUpdateState({ title: 'a', urgent: true }, clock.tick())

  it('writes only what changed when no field is dropped', () => {
    const delta = upgradeDelta({ title: 'a' }, { title: 'a', priority: 3 }, () => clock.tick())
    expect(delta?.fields.map((f) => f[0])).toEqual(['priority'])
    expect(upgradeDelta({ title: 'a' }, { title: 'a' }, () => clock.tick())).toBeUndefined()
  })

  it('replaces the record when the upgrade drops a field, so the merged record is the upgrade', () => {
    const to = { title: 'a', priority: 3, _v: 2 }
    const delta = upgradeDelta(lwwView(base) as RecordValue, to, () => clock.tick())
    expect(lwwView(mergeLww(base, delta!))).toEqual(to)
  })
})

describe('stampsAfter', () => {
  it('stamps an upgrade above the writes it upgrades and below any later edit', () => {
    let wall = 5_000
    const device = new Hlc({ replicaId: 'device' as ReplicaId, now: () => wall })
    const v1 = lwwUpdateState({ title: 'old', urgent: true }, device.tick())
    wall += 10
    const laterEdit = lwwUpdateState({ title: 'new' }, device.tick())
    const upgrade = upgradeDelta(lwwView(v1) as RecordValue, { title: 'old', priority: 3, _v: 2 }, stampsAfter(v1, 'relay' as ReplicaId))!
    // The upgrade replaces the v1 record; the later edit of the title survives it in any merge order.
    expect(lwwView(mergeLww(v1, upgrade))).toEqual({ title: 'old', priority: 3, _v: 2 })
    expect(lwwView(mergeLww(mergeLww(v1, laterEdit), upgrade))).toEqual({ title: 'new', priority: 3, _v: 2 })
    expect(lwwView(mergeLww(mergeLww(v1, upgrade), laterEdit))).toEqual({ title: 'new', priority: 3, _v: 2 })
  })
})

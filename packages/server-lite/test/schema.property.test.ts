/**
 * Property: whatever the schema and whatever the writes, the relay's stored state of a map
 * with a schema always validates (the documented guarantee: every live record validates;
 * a deleted record has nothing to validate).
 *
 * Each run draws a schema (per field a number range, required or optional; sometimes the
 * cross-field refinement a <= b), then writes from three replicas with independent
 * clocks — sets, updates and deletes with values in range, out of range and of the wrong
 * type — delivered in a random order through the relay's own write pipeline
 * (`writeRequest`, the schema gate) into a real store (core's MemoryStore, which passes
 * the same store acceptance suite as LMDB and Postgres). After every write, every stored
 * record is checked against the schema. Seeded: OUTPOST_SEED replays a run (the seed is
 * printed), OUTPOST_PROPERTY_RUNS sets the runs (default 200).
 */
import fc from 'fast-check'
import { Hlc, MemoryStore, lwwDeleteState, lwwSetState, lwwUpdateState, lwwView, type Change, type LwwRecordState, type MapSchema, type RecordValue, type ReplicaId } from '@outpost/core'
import { testSeed } from '@outpost/core/testing'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { MapAccess } from '../src/auth/rules'
import { SchemaGate } from '../src/sync/schema-gate'
import { writeRequest, type PipelineContext } from '../src/sync/write-pipeline'

const RUNS = Number(process.env['OUTPOST_PROPERTY_RUNS'] ?? 200)
const FIELDS = ['a', 'b', 'c'] as const
const FULL: MapAccess = { read: true, write: true, filter: undefined, visible: () => true, keyAllowed: () => true }

interface FieldSpec {
  readonly min: number
  readonly max: number
  readonly required: boolean
}

const fieldSpec = fc.record({ min: fc.integer({ min: -5, max: 5 }), span: fc.integer({ min: 0, max: 10 }), required: fc.boolean() }).map(({ min, span, required }): FieldSpec => ({ min, max: min + span, required }))
const schemaSpec = fc.record({ a: fieldSpec, b: fieldSpec, c: fieldSpec, ordered: fc.boolean() })
type SchemaSpec = { readonly a: FieldSpec; readonly b: FieldSpec; readonly c: FieldSpec; readonly ordered: boolean }

function schemaOf(spec: SchemaSpec): MapSchema {
  const field = (f: FieldSpec) => (f.required ? z.number().int().min(f.min).max(f.max) : z.number().int().min(f.min).max(f.max).optional())
  const object = z.object({ a: field(spec.a), b: field(spec.b), c: field(spec.c) })
  return {
    version: 1,
    schema: spec.ordered ? object.refine((r) => r.a === undefined || r.b === undefined || r.a <= r.b, { message: 'a must not exceed b', path: ['b'] }) : object,
  }
}

const value = fc.oneof(fc.integer({ min: -8, max: 18 }), fc.constant('x'), fc.constant(null), fc.constant(1.5))
const patch = fc.dictionary(fc.constantFrom(...FIELDS), value, { minKeys: 1, maxKeys: 3 }) as fc.Arbitrary<RecordValue>
const write = fc.record({
  replica: fc.integer({ min: 0, max: 2 }),
  key: fc.constantFrom('k1', 'k2'),
  op: fc.oneof(
    { weight: 3, arbitrary: patch.map((p) => ({ type: 'update' as const, patch: p })) },
    { weight: 3, arbitrary: patch.map((p) => ({ type: 'set' as const, patch: p })) },
    { weight: 1, arbitrary: fc.constant({ type: 'delete' as const }) },
  ),
  // Writes are made, then delivered: a write may reach the relay after later ones (offline devices).
  delay: fc.integer({ min: 0, max: 3 }),
})

describe('schema enforcement (property)', () => {
  it('the stored state of a map with a schema always validates', async () => {
    const seed = testSeed('schema.property')
    let accepted = 0
    let refused = 0
    await fc.assert(
      fc.asyncProperty(schemaSpec, fc.array(write, { minLength: 1, maxLength: 25 }), async (spec, writes) => {
        const schema = schemaOf(spec)
        const gate = new SchemaGate({ m: schema }, 'optional')
        let wall = 1_000_000
        const now = () => wall
        const relayClock = new Hlc({ replicaId: 'relay' as ReplicaId, now })
        const pipeline: PipelineContext = { clock: relayClock, limits: { maxFrameBytes: 1 << 20, maxElements: 100_000 }, filterFields: () => undefined, resolution: () => undefined, schemas: gate }
        const clocks = [0, 1, 2].map((i) => new Hlc({ replicaId: `r${i}` as ReplicaId, now }))
        const store = new MemoryStore()
        // Make every write, each replica on its own clock, then deliver them in (index + delay) order.
        const made = writes.map((w, i) => {
          wall += 1
          const clock = clocks[w.replica] as Hlc
          const state: LwwRecordState =
            w.op.type === 'delete' ? lwwDeleteState(clock.tick()) : w.op.type === 'set' ? lwwSetState(w.op.patch, clock.tick(), clock.tick()) : lwwUpdateState(w.op.patch, clock.tick())
          return { order: i + w.delay, replica: `r${w.replica}`, change: { kind: 'lww', map: 'm', key: w.key, state } as Change }
        })
        made.sort((x, y) => x.order - y.order)
        for (const { replica, change } of made) {
          let outcome
          try {
            const request = writeRequest(change, { replicaId: replica, access: () => FULL }, (await store.mapInfo('m'))?.kind, pipeline)
            ;[outcome] = await store.applyWrites([request])
          } catch (error) {
            outcome = { status: 'refused', error }
          }
          if (outcome?.status === 'refused') {
            refused++
            expect((outcome.error as { code?: string }).code).toBe('SCHEMA_VALIDATION')
          } else {
            accepted++
          }
          for (const record of await store.scanRecords('m', { limit: 100 })) {
            const view = lwwView(record.state as LwwRecordState)
            if (view === undefined) continue
            const result = schema.schema['~standard'].validate(view) as { issues?: unknown }
            expect(result.issues, `stored ${record.key} = ${JSON.stringify(view)} does not validate`).toBeUndefined()
          }
        }
      }),
      { seed, numRuns: RUNS },
    )
    // Not vacuous: both verdicts happened.
    expect(accepted).toBeGreaterThan(0)
    expect(refused).toBeGreaterThan(0)
  })
})

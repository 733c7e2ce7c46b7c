/**
 * Schema jobs over the records at rest: the drift report (`outpost-server schema check`:
 * records that do not validate against the deployed schemas, with counts and sample keys)
 * and the upgrade (`outpost-server schema migrate`, also run by a relay at start): every
 * record older than its map's schema is upgraded through the migration chain and written
 * back through the write pipeline (validated like any write, stamped by the relay, fanned
 * out to subscribers).
 *
 * The upgrade is resumable: after each page it stores its position per map in the store's
 * metadata (`schema-migrate:<map>` = `{ version, after, done }`), in its own commit after
 * the page's writes; a job stopped anywhere starts again from its last page, and a record
 * upgraded twice is harmless (the second upgrade finds it current).
 */
import {
  SchemaValidationError,
  isOutpostError,
  lwwView,
  migrateRecord,
  recordVersion,
  checkRecord,
  stampsAfter,
  upgradeDelta,
  type LwwRecordState,
  type SyncStore,
  type Value,
} from '@outpost/core'
import type { Logger } from 'pino'
import type { MapAccess } from '../auth/rules'
import type { SchemaGate } from './schema-gate'
import { writeRequest, type PipelineContext, type PipelineRequest } from './write-pipeline'

/** Sample keys kept per category in a report. */
const SAMPLES = 10

/** One map's drift report. */
export interface SchemaDrift {
  readonly map: string
  /** The deployed schema's version. */
  readonly version: number
  /** Records scanned (tombstones included). */
  readonly records: number
  /** Live records at the schema's version that validate. */
  readonly valid: number
  /** Live records older than the schema that migrate to a valid record (`schema migrate` upgrades them). */
  readonly outdated: number
  /** Records that do not validate (after migration, when older), or are not LWW records. */
  readonly invalid: number
  /** Deleted records (not validated). */
  readonly deleted: number
  /** Up to 10 invalid keys with the failing path and message. */
  readonly samples: readonly { readonly key: string; readonly path: string; readonly message: string }[]
  /** Up to 10 outdated keys. */
  readonly outdatedSamples: readonly string[]
}

/** What the drift report reads. */
export interface SchemaJobStore extends Pick<SyncStore, 'mapInfo' | 'scanRecords'> {}

/** Reports, per map with a schema, how the stored records fare against it. */
export async function checkSchemas(store: SchemaJobStore, gate: SchemaGate, pageSize = 500): Promise<SchemaDrift[]> {
  const reports: SchemaDrift[] = []
  for (const [map, schema] of Object.entries(gate.schemas)) {
    const drift = { map, version: schema.version, records: 0, valid: 0, outdated: 0, invalid: 0, deleted: 0, samples: [] as { key: string; path: string; message: string }[], outdatedSamples: [] as string[] }
    const info = await store.mapInfo(map)
    for (let after: string | undefined; info !== undefined; ) {
      const page = await store.scanRecords(map, { limit: pageSize, ...(after === undefined ? {} : { after }) })
      for (const record of page) {
        drift.records++
        const where = `${map}/${record.key.slice(0, 64)}`
        if (info.kind !== 'lww') {
          drift.invalid++
          if (drift.samples.length < SAMPLES) drift.samples.push({ key: record.key, path: '', message: `map holds ${info.kind} data, not records` })
          continue
        }
        const view = lwwView(record.state as LwwRecordState)
        if (view === undefined) {
          drift.deleted++
          continue
        }
        try {
          const older = recordVersion(view, where) < schema.version
          checkRecord(schema, view, where)
          if (older) {
            drift.outdated++
            if (drift.outdatedSamples.length < SAMPLES) drift.outdatedSamples.push(record.key)
          } else {
            drift.valid++
          }
        } catch (error) {
          drift.invalid++
          const details = isOutpostError(error) ? error.details : undefined
          if (drift.samples.length < SAMPLES) drift.samples.push({ key: record.key, path: typeof details?.['path'] === 'string' ? details['path'] : '', message: error instanceof Error ? error.message.slice(0, 300) : String(error) })
        }
      }
      if (page.length < pageSize) break
      after = (page[page.length - 1] as { key: string }).key
    }
    reports.push(drift)
  }
  return reports
}

/** One map's upgrade. */
export interface SchemaMigration {
  readonly map: string
  readonly version: number
  /** Records scanned by this run (a resumed run starts after its last stored position). */
  readonly scanned: number
  /** Records upgraded by this run. */
  readonly upgraded: number
  /** Records whose upgrade failed (the migration threw, or its result does not validate), with why. */
  readonly failed: readonly { readonly key: string; readonly message: string }[]
  /** Failures beyond the samples kept. */
  readonly failedCount: number
  /** True when the map is done (every page scanned at this version). */
  readonly done: boolean
  /** True when this run started from a stored position. */
  readonly resumed: boolean
}

/** What the upgrade needs. */
export interface MigrateOptions {
  readonly store: Pick<SyncStore, 'mapInfo' | 'scanRecords'> & { getMeta(key: string): Promise<Value | undefined> }
  readonly gate: SchemaGate
  /** The pipeline's view of the relay (its clock stamps upgrades). */
  readonly pipeline: PipelineContext
  /** The relay's replica id (upgrades are its own writes). */
  readonly replicaId: string
  /** Stores requests (the relay's write queue: committed, then fanned out). */
  write(requests: readonly PipelineRequest[]): Promise<readonly { readonly status: string; readonly error?: unknown }[]>
  /** Stores the position (metadata commit). */
  savePosition(key: string, value: Value): Promise<void>
  /** Records per page (default 200). */
  readonly pageSize?: number
  /** Stop after this many pages in total (tests of resumption; default: no limit). */
  readonly maxPages?: number
  /** Checked between pages: true stops the job (relay shutdown). */
  readonly stopped?: () => boolean
}

/** The metadata key of a map's upgrade position. */
export function migratePositionKey(map: string): string {
  return `schema-migrate:${map}`
}

const FULL_ACCESS: MapAccess = Object.freeze({ read: true, write: true, filter: undefined, visible: () => true, keyAllowed: () => true })

/** Upgrades every record older than its map's schema; see the module comment. */
export async function migrateSchemas(options: MigrateOptions): Promise<SchemaMigration[]> {
  const { store, gate, pipeline } = options
  const pageSize = options.pageSize ?? 200
  const writer = { replicaId: options.replicaId, access: () => FULL_ACCESS }
  let pages = 0
  const results: SchemaMigration[] = []
  for (const [map, schema] of Object.entries(gate.schemas)) {
    const key = migratePositionKey(map)
    const saved = (await store.getMeta(key)) as { version?: unknown; after?: unknown; done?: unknown } | undefined
    const same = saved !== undefined && saved.version === schema.version
    const result = { map, version: schema.version, scanned: 0, upgraded: 0, failed: [] as { key: string; message: string }[], failedCount: 0, done: same && saved.done === true, resumed: same && saved.done !== true && typeof saved.after === 'string' }
    results.push(result)
    if (result.done || schema.version === 1) {
      result.done = true
      continue
    }
    const info = await store.mapInfo(map)
    if (info === undefined || info.kind !== 'lww') {
      result.done = true
      await options.savePosition(key, { version: schema.version, done: true })
      continue
    }
    let after = result.resumed ? (saved?.after as string) : undefined
    for (;;) {
      if (options.stopped?.() === true || (options.maxPages !== undefined && pages >= options.maxPages)) return results
      pages++
      const page = await store.scanRecords(map, { limit: pageSize, ...(after === undefined ? {} : { after }) })
      const requests: PipelineRequest[] = []
      const keys: string[] = []
      for (const record of page) {
        result.scanned++
        const view = lwwView(record.state as LwwRecordState)
        if (view === undefined) continue
        const where = `${map}/${record.key.slice(0, 64)}`
        try {
          const migrated = migrateRecord(schema, view, where)
          if (!migrated.changed) continue
          const delta = upgradeDelta(view, migrated.record, stampsAfter(record.state as LwwRecordState, pipeline.clock.replicaId))
          if (delta === undefined) continue
          requests.push(writeRequest({ kind: 'lww', map, key: record.key, state: delta }, writer, 'lww', pipeline))
          keys.push(record.key)
        } catch (error) {
          fail(result, record.key, error)
        }
      }
      if (requests.length > 0) {
        const outcomes = await options.write(requests)
        outcomes.forEach((outcome, i) => {
          if (outcome.status === 'applied') result.upgraded++
          else if (outcome.status === 'refused') fail(result, keys[i] as string, outcome.error)
        })
      }
      const last = page[page.length - 1]
      if (page.length < pageSize || last === undefined) {
        result.done = true
        await options.savePosition(key, { version: schema.version, done: true })
        break
      }
      after = last.key
      await options.savePosition(key, { version: schema.version, after, done: false })
    }
  }
  return results
}

function fail(result: { failed: { key: string; message: string }[]; failedCount: number }, key: string, error: unknown): void {
  result.failedCount++
  if (result.failed.length < SAMPLES) result.failed.push({ key, message: error instanceof SchemaValidationError || error instanceof Error ? error.message.slice(0, 300) : String(error) })
}

/**
 * The relay's own run of {@link migrateSchemas} at start (on Postgres, only by the relay
 * holding the jobs lock): after the current event turn, logged per map; never rejects
 * (a failure is logged and the next start resumes).
 */
export async function upgradeAtRest(logger: Logger, lead: () => Promise<boolean>, options: MigrateOptions): Promise<void> {
  try {
    await new Promise((resolve) => setImmediate(resolve))
    if (!(await lead())) return
    for (const result of await migrateSchemas(options)) {
      if (result.upgraded > 0 || result.failedCount > 0) logger.info({ map: result.map, version: result.version, upgraded: result.upgraded, failed: result.failedCount, done: result.done }, 'schema upgrade at rest')
    }
  } catch (error) {
    logger.error({ err: error }, 'schema upgrade at rest failed; the next start resumes it')
  }
}

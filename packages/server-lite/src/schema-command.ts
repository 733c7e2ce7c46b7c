/**
 * `outpost-server schema check` and `outpost-server schema migrate`: the operator's view of
 * the records at rest against the schema module the relay is given (`--schema`), over the
 * same store the relay uses (`--store`, `--data-dir`). `check` prints the drift report and
 * exits 1 when some record does not validate; `migrate` upgrades older records and can be
 * stopped and run again (it resumes from its last page). On LMDB run `migrate` while the
 * relay is stopped (a running relay runs the same upgrade itself at start); on Postgres any time.
 */
import { DEFAULT_CODEC_LIMITS, Hlc, type ReplicaId } from '@outpost/core'
import { RuleSet } from './auth/rules'
import type { RelayConfig } from './config'
import { createLogger } from './logger'
import { createMetrics } from './metrics'
import { LmdbStore } from './store/lmdb-store'
import { PostgresStore } from './store/postgres-store'
import { SchemaGate, loadSchemas } from './sync/schema-gate'
import { checkSchemas, migrateSchemas, type SchemaDrift, type SchemaMigration } from './sync/schema-job'
import { SyncService, type RelayStore } from './sync/sync-service'
import type { PipelineContext } from './sync/write-pipeline'

/** Runs `check` or `migrate` for `config`; resolves with the lines to print and the exit code. */
export async function runSchemaCommand(command: 'check' | 'migrate', config: RelayConfig, options: { maxPages?: number; pageSize?: number } = {}): Promise<{ lines: string[]; exitCode: number; report: SchemaDrift[] | SchemaMigration[] }> {
  if (config.schema === undefined) return { lines: ['outpost-server schema: pass --schema <module> (the module exporting your map schemas)'], exitCode: 1, report: [] }
  const gate = new SchemaGate(await loadSchemas(config.schema), config.schemaMode)
  const store: RelayStore = config.store === 'lmdb' ? LmdbStore.open({ path: config.dataDir }) : await PostgresStore.open({ connectionString: config.store, schema: config.storeSchema })
  try {
    if (command === 'check') {
      const report = await checkSchemas(store, gate)
      const lines = report.map(
        (d) =>
          `${d.map} (schema version ${d.version}): ${d.records} records, ${d.valid} valid, ${d.outdated} outdated (schema migrate upgrades them), ${d.invalid} invalid, ${d.deleted} deleted` +
          d.samples.map((s) => `\n  invalid ${JSON.stringify(s.key)}${s.path === '' ? '' : ` at ${s.path}`}: ${s.message}`).join('') +
          (d.outdatedSamples.length === 0 ? '' : `\n  outdated: ${d.outdatedSamples.map((k) => JSON.stringify(k)).join(', ')}`),
      )
      const invalid = report.reduce((sum, d) => sum + d.invalid, 0)
      lines.push(invalid === 0 ? 'outpost-server schema check: every stored record validates' : `outpost-server schema check: ${invalid} stored record(s) do not validate; fix them (or the schema) and run again`)
      return { lines, exitCode: invalid === 0 ? 0 : 1, report }
    }
    const logger = createLogger('silent')
    const sync = new SyncService(store, createMetrics(false), logger, { changeLogEntries: config.changeLogEntries })
    const rules = new RuleSet(config.rules)
    const pipeline: PipelineContext = {
      clock: new Hlc({ replicaId: config.replicaId as ReplicaId, maxDrift: config.maxDriftMs }),
      limits: { maxFrameBytes: config.limits.maxFrameBytes, maxElements: DEFAULT_CODEC_LIMITS.maxElements },
      filterFields: (map) => rules.filterFields(map),
      resolution: () => undefined,
      schemas: gate,
    }
    const report = await migrateSchemas({
      store,
      gate,
      pipeline,
      replicaId: config.replicaId,
      write: (requests) => sync.write(requests, sync),
      savePosition: (key, value) => sync.commit({ meta: [{ key, value }] }),
      ...(options.maxPages === undefined ? {} : { maxPages: options.maxPages }),
      ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
    })
    await sync.settle()
    const lines = report.map(
      (m) =>
        `${m.map} (schema version ${m.version}): ${m.done ? 'done' : 'stopped, run again to resume'}${m.resumed ? ' (resumed)' : ''}; ${m.scanned} scanned, ${m.upgraded} upgraded, ${m.failedCount} failed` +
        m.failed.map((f) => `\n  failed ${JSON.stringify(f.key)}: ${f.message}`).join(''),
    )
    const failed = report.reduce((sum, m) => sum + m.failedCount, 0)
    return { lines, exitCode: failed === 0 ? 0 : 1, report }
  } finally {
    await store.close()
  }
}

/**
 * PostgreSQL for the cluster scenario: where it is, whether it answers (skip with a printed
 * reason, or fail under OUTPOST_REQUIRE_SERVICES=1), a schema of the run's own, and a reader
 * of one map straight from the store's tables — an oracle independent of the relays, so "in
 * the store" means committed rows, not what some relay answers.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { decode, lwwView, type LwwRecordState, type RecordValue } from '@outpost/core'

/** Where the scenario's Postgres is. */
export const POSTGRES_URL = process.env['OUTPOST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Undefined when Postgres answers; otherwise why not (and under OUTPOST_REQUIRE_SERVICES=1 it throws). */
export async function postgresMissing(scenario: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000 })
  let reason: string | undefined
  try {
    await client.connect()
    await client.query('select 1')
  } catch (error) {
    reason = `PostgreSQL at ${POSTGRES_URL} is not reachable (${error instanceof Error ? error.message : String(error)})`
  } finally {
    await client.end().catch(() => undefined)
  }
  if (reason !== undefined) {
    if (process.env['OUTPOST_REQUIRE_SERVICES'] === '1') throw new Error(`OUTPOST_REQUIRE_SERVICES=1 but ${reason}`)
    console.log(`[${scenario}] skipping: ${reason}`)
  }
  return reason
}

/** A schema name no other run uses. */
export function runSchema(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`
}

/** Drops the run's schema (a leftover one harms nothing but space; kept when `keep` for a post-mortem). */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    await client.query(`drop schema if exists "${schema}" cascade`)
  } finally {
    await client.end()
  }
}

/** The store spells keys and names as UTF-16 code units, big-endian (see postgres-schema.ts). */
function utf16be(value: string): Buffer {
  return Buffer.from(value, 'utf16le').swap16()
}

function fromUtf16be(bytes: Buffer): string {
  return Buffer.from(bytes).swap16().toString('utf16le')
}

/** Stored states were bounded when written; read them back without the wire's limits. */
const STORED_LIMITS = { maxFrameBytes: Number.MAX_SAFE_INTEGER, maxDepth: 1024, maxElements: Number.MAX_SAFE_INTEGER }

/**
 * Every live record of LWW map `map` as committed in `schema` (tombstoned keys are absent,
 * as they are from a client's view).
 */
export async function readStoredMap(schema: string, map: string): Promise<Map<string, RecordValue>> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    const { rows } = await client.query<{ key: Buffer; state: Buffer }>(
      `select r.key, r.state from "${schema}".records r join "${schema}".maps m on m.id = r.map_id where m.name = $1`,
      [utf16be(map)],
    )
    const out = new Map<string, RecordValue>()
    for (const row of rows) {
      const view = lwwView(decode(row.state, STORED_LIMITS) as unknown as LwwRecordState)
      if (view !== undefined) out.set(fromUtf16be(row.key), view)
    }
    return out
  } finally {
    await client.end()
  }
}

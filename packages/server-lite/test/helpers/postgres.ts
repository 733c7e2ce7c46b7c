/**
 * PostgreSQL for tests: the local server (127.0.0.1:5432, user postgres, database test, or
 * `OUTPOST_POSTGRES_URL`), a fresh schema per store so runs never share state, and the rule
 * for a machine without Postgres: tests skip with a printed reason, except under
 * `OUTPOST_REQUIRE_SERVICES=1` (CI), where a missing service fails them.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'

/** Where the tests' Postgres is. */
export const POSTGRES_URL = process.env['OUTPOST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Undefined when Postgres answers; otherwise why it does not (and, under OUTPOST_REQUIRE_SERVICES=1, it throws). */
export async function postgresMissing(): Promise<string | undefined> {
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
    console.log(`[postgres] skipping: ${reason}`)
  }
  return reason
}

/** A schema name no other run uses. */
export function freshSchema(prefix = 't'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`
}

/** Drops schemas this run created (best effort: a leftover schema harms nothing but space). */
export async function dropSchemas(schemas: readonly string[]): Promise<void> {
  if (schemas.length === 0) return
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`)
  } finally {
    await client.end()
  }
}

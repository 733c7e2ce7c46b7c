/**
 * The Postgres store's schema, created and upgraded by numbered migrations that run at
 * start (and through `outpost-server migrate`). Each migration runs once, in its own
 * transaction, under an advisory lock, so relays starting together never race to migrate.
 *
 * Strings that are keys or names are stored as `bytea` of their UTF-16 code units,
 * big-endian: exact for every JS string (`\0` included, which `text` refuses) and ordered
 * like JS compares strings, the order the store suites expect.
 */
import type { PoolClient } from 'pg'

/** One schema change. */
export interface Migration {
  readonly version: number
  readonly description: string
  readonly statements: readonly string[]
}

/** Every migration, oldest first. Never edit a shipped one: add the next. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'metadata store, records with sequence numbers, change log, Merkle leaf sums',
    statements: [
      `create table kv (collection bytea not null, key bytea not null, value bytea not null, primary key (collection, key))`,
      `create table meta (key bytea primary key, value bytea not null)`,
      `create table commit_seq (id int primary key, seq bigint not null)`,
      `insert into commit_seq (id, seq) values (1, 0)`,
      `create table maps (id serial primary key, name bytea not null unique, kind text not null, head bigint not null default 0, floor bigint not null default 0, count bigint not null default 0)`,
      `create table records (map_id int not null, leaf int not null, key bytea not null, seq bigint not null, state bytea not null, primary key (map_id, leaf, key))`,
      `create table log (map_id int not null, seq bigint not null, key bytea not null, before bytea, primary key (map_id, seq))`,
      `create table leaves (map_id int not null, leaf int not null, hi bigint not null, lo bigint not null, count bigint not null, primary key (map_id, leaf))`,
    ],
  },
  {
    version: 2,
    description: 'locks: one row per lock with its fencing token and lease, shared by every relay',
    statements: [
      `create table locks (name bytea primary key, counter bigint not null, timeline int not null, subject bytea, expires_at timestamptz)`,
    ],
  },
]

/** The schema version this build needs. */
export const SCHEMA_VERSION = (MIGRATIONS[MIGRATIONS.length - 1] as Migration).version

/** A schema name, quoted for SQL (only letters, digits and `_`, to keep it simple and safe). */
export function quoteSchema(schema: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw new Error(`schema name ${JSON.stringify(schema)} must be letters, digits and _ (at most 63)`)
  return `"${schema}"`
}

/**
 * Brings `schema` up to {@link SCHEMA_VERSION}; returns the versions applied now. A database
 * newer than this build (a later version recorded) is refused: run the newer relay.
 */
export async function migrate(client: PoolClient, schema: string): Promise<number[]> {
  const s = quoteSchema(schema)
  await client.query('begin')
  try {
    // One migrator at a time per schema, whichever relay starts first.
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [`outpost-migrate:${schema}`])
    await client.query(`create schema if not exists ${s}`)
    await client.query(`create table if not exists ${s}.migrations (version int primary key, description text not null, applied_at timestamptz not null default now())`)
    const done = new Set((await client.query<{ version: number }>(`select version from ${s}.migrations`)).rows.map((r) => r.version))
    const newest = Math.max(0, ...done)
    if (newest > SCHEMA_VERSION) {
      throw new Error(`the Postgres schema ${schema} is at version ${newest}, newer than this relay knows (${SCHEMA_VERSION}); run the newer relay`)
    }
    const applied: number[] = []
    for (const migration of MIGRATIONS) {
      if (done.has(migration.version)) continue
      await client.query(`set local search_path to ${s}`)
      for (const statement of migration.statements) await client.query(statement)
      await client.query(`insert into ${s}.migrations (version, description) values ($1, $2)`, [migration.version, migration.description])
      applied.push(migration.version)
    }
    await client.query('commit')
    return applied
  } catch (error) {
    await client.query('rollback')
    throw error
  }
}

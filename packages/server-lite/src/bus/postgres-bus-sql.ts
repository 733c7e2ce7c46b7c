/**
 * The Postgres bus's SQL: its one table, its NOTIFY channel, and reading the maps' heads
 * that the store keeps. Kept apart from the bus's connection logic.
 *
 * `bus_messages` is UNLOGGED: it holds only messages too large for a NOTIFY payload for a
 * short retention, so it skips the WAL (cheaper writes, and nothing of it survives a
 * Postgres crash or reaches a standby — a relay that then misses one signals `overrun`).
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import { quoteSchema } from '../store/postgres-schema'

export { quoteSchema }

/**
 * Postgres refuses a NOTIFY payload of 8,000 bytes or more; a packet whose text would pass
 * this goes through `bus_messages` instead, and the NOTIFY carries its id.
 */
export const NOTIFY_PAYLOAD_BYTES = 7000

/** The NOTIFY channel of the relays sharing `schema` (an identifier of at most 63 bytes). */
export function channelFor(schema: string): string {
  const plain = `outpost_bus_${schema}`
  return plain.length <= 63 ? plain : `outpost_bus_${createHash('sha256').update(schema).digest('hex').slice(0, 40)}`
}

/** `name` quoted as an SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** Creates the bus's table if missing; relays starting together take turns (an advisory lock). */
export async function ensureBusTable(client: pg.PoolClient, schema: string): Promise<void> {
  const s = quoteSchema(schema)
  await client.query('begin')
  try {
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [`outpost-bus:${schema}`])
    await client.query(`create schema if not exists ${s}`)
    await client.query(`create unlogged table if not exists ${s}.bus_messages (id bigserial primary key, created timestamptz not null default now(), body bytea not null)`)
    await client.query('commit')
  } catch (error) {
    await client.query('rollback').catch(() => undefined)
    throw error
  }
}

/** Inserts a packet and notifies its id, in one statement (one transaction, one NOTIFY). */
export function insertAndNotify(schema: string): string {
  return `with m as (insert into ${quoteSchema(schema)}.bus_messages (body) values ($1) returning id) select pg_notify($2, $3 || m.id::text) from m`
}

/** Deletes stored packets older than `$1` milliseconds. */
export function pruneMessages(schema: string): string {
  return `delete from ${quoteSchema(schema)}.bus_messages where created < now() - $1 * interval '1 millisecond'`
}

/** Reads one stored packet. */
export function selectMessage(schema: string): string {
  return `select body from ${quoteSchema(schema)}.bus_messages where id = $1`
}

/** The heads of all maps, or (`$1`) of the maps named. */
export function selectHeads(schema: string, named: boolean): string {
  return `select name, head from ${quoteSchema(schema)}.maps${named ? ' where name = any($1::bytea[])' : ''}`
}


/** Postgres's code for "relation does not exist": the store has not created `maps` yet. */
export const UNDEFINED_TABLE = '42P01'

/** A map name as the store keeps it (`bytea` of UTF-16 code units, big-endian), and back. */
export { utf16 as nameBytes, fromUtf16 as nameFromBytes } from '../store/key-bytes'

/**
 * How the Postgres store's rows map to core's values: keys and names as `bytea` of their
 * UTF-16 code units (big-endian, so byte order is JavaScript's string order), leaves as
 * integers, stored values as core's encoding. Shared by the store's reads and its write
 * transaction (`postgres-writes.ts`).
 */
import pg from 'pg'
import { decode, type CollectionKind, type CrdtState, type SyncRecord, type Value } from '@outpost/core'
import { STORED_LIMITS, fromUtf16, leafOf, utf16 } from './key-bytes'

export function decodeValue(bytes: Buffer): Value {
  return decode(bytes, STORED_LIMITS) as Value
}

/** A map's bookkeeping row. */
export interface MapRow {
  id: number
  kind: CollectionKind
  head: number
  floor: number
  count: number
}

interface RawMap {
  id: number
  kind: string
  head: string
  floor: string
  count: string
}

export interface RawRecord {
  key: Buffer
  seq: string
  state: Buffer
}

/** A record row as core's {@link SyncRecord}. */
export function recordOf(row: RawRecord): SyncRecord {
  return { key: fromUtf16(row.key), seq: Number(row.seq), state: decodeValue(row.state) as unknown as CrdtState }
}

/** Something that runs queries: the pool, or one transaction's client. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>

/** `map`'s bookkeeping row (`for update` when `lock`), or undefined when the map was never written. */
export async function selectMapRow(db: Queryable, schema: string, map: string, lock = false): Promise<MapRow | undefined> {
  const { rows } = await db.query<RawMap>(`select id, kind, head, floor, count from ${schema}.maps where name = $1${lock ? ' for update' : ''}`, [utf16(map)])
  const row = rows[0]
  return row === undefined ? undefined : { id: row.id, kind: row.kind as CollectionKind, head: Number(row.head), floor: Number(row.floor), count: Number(row.count) }
}

/** The stored records of `keys` in map `mapId` (absent keys are missing from the answer). */
export async function selectRecords(db: Queryable, schema: string, mapId: number, keys: readonly string[]): Promise<SyncRecord[]> {
  const { rows } = await db.query<RawRecord>(
    `select r.key, r.seq, r.state from ${schema}.records r join unnest($2::int[], $3::bytea[]) as k(leaf, key) on r.leaf = k.leaf and r.key = k.key where r.map_id = $1`,
    [mapId, keys.map(leafOf), keys.map(utf16)],
  )
  return rows.map(recordOf)
}

/**
 * The Postgres store's write transaction (`applyWrites`), run inside one transaction the
 * store opened: lock the maps written, in name order; read their current records; run each
 * request's `decide` against them, in request order; then write records, log entries, leaf
 * sums and the maps' bookkeeping. See `postgres-store.ts` for why sequence numbers are
 * commit order.
 */
import type pg from 'pg'
import {
  InternalError,
  InvalidValueError,
  addToSum,
  assertStoredValue,
  encode,
  entryHash,
  isOutpostError,
  stateDigest,
  type CrdtState,
  type HashSum,
  type OutpostError,
  type SyncRecord,
  type Value,
  type WriteOutcome,
  type WriteRequest,
} from '@outpost/core'
import { leafOf, utf16 } from './key-bytes'
import { selectMapRow, selectRecords, type MapRow } from './postgres-rows'

/** One entry-hash change of a leaf: the state that left it and the one that entered it. */
export interface LeafChange {
  readonly map: string
  readonly key: string
  readonly remove: CrdtState | undefined
  readonly add: CrdtState | undefined
}

/** `requests` decided and written in the open transaction of `client`; one outcome per request. */
export async function applyWritesIn(client: pg.PoolClient, schema: string, requests: readonly WriteRequest[]): Promise<WriteOutcome[]> {
  // 1. Lock every map written, in name order (no deadlock between two transactions).
  const names = [...new Set(requests.map((r) => r.map))].sort((a, b) => Buffer.compare(utf16(a), utf16(b)))
  const rows = new Map<string, MapRow>()
  const created = new Set<string>()
  for (const name of names) {
    let row = await selectMapRow(client, schema, name, true)
    if (row === undefined) {
      // The first write of a new map: create its row now (locked: we hold the insert), drop it at the end if nothing landed.
      const kind = (requests.find((r) => r.map === name) as WriteRequest).kind
      const inserted = await client.query<{ id: number }>(`insert into ${schema}.maps (name, kind) values ($1, $2) on conflict (name) do nothing returning id`, [utf16(name), kind])
      if (inserted.rows[0] !== undefined) created.add(name)
      row = (await selectMapRow(client, schema, name, true)) as MapRow
    }
    rows.set(name, row)
  }
  // 2. Read the current records (the maps' row locks keep other writers of these maps out).
  const current = new Map<string, SyncRecord>()
  for (const name of names) {
    const row = rows.get(name) as MapRow
    const keys = [...new Set(requests.filter((r) => r.map === name).map((r) => r.key))]
    for (const record of await selectRecords(client, schema, row.id, keys)) current.set(`${name}\u0000${record.key}`, record)
  }
  // 3. Decide, in request order, against the records as this transaction changes them.
  const outcomes: WriteOutcome[] = []
  const writes: { map: string; record: SyncRecord; previous: SyncRecord | undefined; before: Value | undefined }[] = []
  for (const request of requests) {
    const row = rows.get(request.map) as MapRow
    const stageKey = `${request.map}\u0000${request.key}`
    const record = current.get(stageKey)
    let decision
    try {
      if (row.kind !== request.kind) throw new InvalidValueError(`Map ${request.map} holds ${row.kind} data; this change is ${request.kind}. Use a different map name`, { map: request.map, kind: row.kind })
      decision = request.decide(record)
      if (decision !== undefined) assertStoredValue(decision.state as unknown as Value, `${request.map}/${request.key.slice(0, 64)}`)
    } catch (error) {
      if (!isOutpostError(error)) throw new InternalError(`a write decision failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`)
      outcomes.push({ status: 'refused', error: error as OutpostError })
      continue
    }
    if (decision === undefined) {
      outcomes.push({ status: 'unchanged', current: record })
      continue
    }
    row.head += 1
    if (record === undefined) row.count += 1
    const next: SyncRecord = { key: request.key, seq: row.head, state: decision.state }
    current.set(stageKey, next)
    writes.push({ map: request.map, record: next, previous: record, before: decision.before })
    outcomes.push({ status: 'applied', seq: row.head, state: decision.state, previous: record })
  }
  // 4. Write records, log entries, leaf sums and bookkeeping.
  const latest = new Map<string, { map: string; record: SyncRecord }>()
  for (const w of writes) latest.set(`${w.map}\u0000${w.record.key}`, w)
  if (latest.size > 0) {
    const list = [...latest.values()]
    await client.query(
      `insert into ${schema}.records (map_id, leaf, key, seq, state) select * from unnest($1::int[], $2::int[], $3::bytea[], $4::bigint[], $5::bytea[]) on conflict (map_id, leaf, key) do update set seq = excluded.seq, state = excluded.state`,
      [list.map((w) => (rows.get(w.map) as MapRow).id), list.map((w) => leafOf(w.record.key)), list.map((w) => utf16(w.record.key)), list.map((w) => w.record.seq), list.map((w) => Buffer.from(encode(w.record.state as unknown as Value)))],
    )
    await client.query(
      `insert into ${schema}.log (map_id, seq, key, before) select * from unnest($1::int[], $2::bigint[], $3::bytea[], $4::bytea[])`,
      [writes.map((w) => (rows.get(w.map) as MapRow).id), writes.map((w) => w.record.seq), writes.map((w) => utf16(w.record.key)), writes.map((w) => (w.before === undefined ? null : Buffer.from(encode(w.before))))],
    )
    await patchLeaves(client, schema, rows, writes.map((w) => ({ map: w.map, key: w.record.key, remove: w.previous?.state, add: w.record.state })))
  }
  for (const name of names) {
    const row = rows.get(name) as MapRow
    if (created.has(name) && !writes.some((w) => w.map === name)) await client.query(`delete from ${schema}.maps where id = $1`, [row.id])
    else await client.query(`update ${schema}.maps set head = $2, count = $3 where id = $1`, [row.id, row.head, row.count])
  }
  return outcomes
}

/** Applies entry-hash changes to the touched leaves (read for update, rewritten once each). */
export async function patchLeaves(client: pg.PoolClient, schema: string, rows: ReadonlyMap<string, MapRow>, changes: readonly LeafChange[]): Promise<void> {
  const sums = new Map<string, { mapId: number; leaf: number; sum: HashSum }>()
  const touched = new Map<string, { mapId: number; leaf: number }>()
  for (const change of changes) {
    const row = rows.get(change.map) as MapRow
    const leaf = leafOf(change.key)
    touched.set(`${row.id}:${leaf}`, { mapId: row.id, leaf })
  }
  const list = [...touched.values()].sort((a, b) => a.mapId - b.mapId || a.leaf - b.leaf)
  const { rows: found } = await client.query<{ map_id: number; leaf: number; hi: string; lo: string; count: string }>(
    `select l.map_id, l.leaf, l.hi, l.lo, l.count from ${schema}.leaves l join unnest($1::int[], $2::int[]) as t(map_id, leaf) on l.map_id = t.map_id and l.leaf = t.leaf order by l.map_id, l.leaf for update of l`,
    [list.map((t) => t.mapId), list.map((t) => t.leaf)],
  )
  for (const t of list) sums.set(`${t.mapId}:${t.leaf}`, { mapId: t.mapId, leaf: t.leaf, sum: { hi: 0, lo: 0, count: 0 } })
  for (const r of found) (sums.get(`${r.map_id}:${r.leaf}`) as { sum: HashSum }).sum = { hi: Number(r.hi), lo: Number(r.lo), count: Number(r.count) }
  for (const change of changes) {
    const row = rows.get(change.map) as MapRow
    const entry = sums.get(`${row.id}:${leafOf(change.key)}`) as { sum: HashSum }
    if (change.remove !== undefined) addToSum(entry.sum, entryHash(change.key, stateDigest(row.kind, change.remove as never)), -1)
    if (change.add !== undefined) addToSum(entry.sum, entryHash(change.key, stateDigest(row.kind, change.add as never)), 1)
  }
  const keep = [...sums.values()].filter((s) => s.sum.count > 0)
  const drop = [...sums.values()].filter((s) => s.sum.count <= 0)
  if (keep.length > 0) {
    await client.query(
      `insert into ${schema}.leaves (map_id, leaf, hi, lo, count) select * from unnest($1::int[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[]) on conflict (map_id, leaf) do update set hi = excluded.hi, lo = excluded.lo, count = excluded.count`,
      [keep.map((s) => s.mapId), keep.map((s) => s.leaf), keep.map((s) => s.sum.hi), keep.map((s) => s.sum.lo), keep.map((s) => s.sum.count)],
    )
  }
  if (drop.length > 0) {
    await client.query(`delete from ${schema}.leaves l using unnest($1::int[], $2::int[]) as t(map_id, leaf) where l.map_id = t.map_id and l.leaf = t.leaf`, [drop.map((s) => s.mapId), drop.map((s) => s.leaf)])
  }
}

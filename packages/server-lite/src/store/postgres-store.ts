/**
 * core's {@link Store} and {@link SyncStore} on PostgreSQL (`pg`): what several relays
 * share when a team outgrows one relay process. Tables live in one schema (default
 * `outpost`), created and upgraded by `postgres-schema.ts`.
 *
 * ## Writes merge inside the transaction
 * `applyWrites` is one transaction: it locks the maps it writes (`select … for update` on
 * their `maps` rows, in name order, so two transactions never deadlock), reads the current
 * records, runs each `decide` against them, and writes records, log entries, leaf sums and
 * the maps' bookkeeping before `commit`. Two relays writing different fields of one key
 * both keep their field: the second merges into what the first committed.
 *
 * ## Sequence numbers are commit order
 * A map's `head` is incremented in the same transaction that holds the map's row lock until
 * it commits. So a change numbered n+1 commits after the change numbered n, and a reader
 * that saw everything up to n and reads `seq > n` later misses nothing. (With a Postgres
 * `sequence`, numbers are taken at insert time: n+1 could commit first, a reader would move
 * past n, and n would land behind its back, silently skipped.) The price: one map's
 * writers serialize on its row, so writes are batched (the relay's queue takes up to 1,000
 * changes per transaction).
 *
 * ## Keys
 * Keys and names are `bytea` of their UTF-16 code units, big-endian (see the schema module).
 */
import pg from 'pg'
import {
  InternalError,
  InvalidKeyError,
  InvalidValueError,
  SYNC_TREE_DEPTH,
  StoreClosedError,
  StoreError,
  addToSum,
  assertStoredValue,
  decode,
  encode,
  entryHash,
  isOutpostError,
  leafPathOf,
  stateDigest,
  type CollectionKind,
  type CrdtState,
  type HashSum,
  type OutpostError,
  type RecordScan,
  type ScanOptions,
  type Store,
  type StoreBatch,
  type StoreEntry,
  type SyncLogEntry,
  type SyncMapInfo,
  type SyncRecord,
  type SyncStore,
  type Value,
  type WriteOutcome,
  type WriteRequest,
} from '@outpost/core'
import { migrate, quoteSchema } from './postgres-schema'
import { PostgresLockBackend } from './postgres-locks'

/** Stored values are decoded without the wire's size limits: they were checked when written. */
const STORED_LIMITS = { maxFrameBytes: Number.MAX_SAFE_INTEGER, maxDepth: 1024, maxElements: Number.MAX_SAFE_INTEGER }

function utf16(value: string): Buffer {
  return Buffer.from(value, 'utf16le').swap16()
}

function fromUtf16(bytes: Buffer): string {
  return Buffer.from(bytes).swap16().toString('utf16le')
}

function leafOf(key: string): number {
  return Number.parseInt(leafPathOf(key, SYNC_TREE_DEPTH), 16)
}

function leafHex(leaf: number): string {
  return leaf.toString(16).padStart(SYNC_TREE_DEPTH, '0')
}

function decodeValue(bytes: Buffer): Value {
  return decode(bytes, STORED_LIMITS) as Value
}

function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string') throw new InvalidKeyError(`${what} must be a string, got ${typeof name}`, { what })
}

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /** A `postgres://` URL (a direct connection, not a transaction pooler: relays use advisory locks and LISTEN). */
  readonly connectionString: string
  /** The schema holding Outpost's tables (created if missing). */
  readonly schema?: string
  /** Connections in the pool. */
  readonly poolSize?: number
}

interface MapRow {
  id: number
  kind: CollectionKind
  head: number
  floor: number
  count: number
}

/** core's Store and SyncStore on PostgreSQL; see the module comment. */
export class PostgresStore implements Store, SyncStore {
  /** Always `'postgres'`. */
  readonly name = 'postgres'
  /** The schema holding the tables. */
  readonly schema: string
  readonly #pool: pg.Pool
  readonly #s: string
  #closed = false

  private constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool
    this.schema = schema
    this.#s = quoteSchema(schema)
  }

  /** Connects, runs the migrations the schema lacks, and returns the store. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    return (await PostgresStore.#open(options)).store
  }

  /** Runs the migrations the schema lacks (`outpost-server migrate`); resolves to the versions applied now. */
  static async migrate(options: PostgresStoreOptions): Promise<number[]> {
    const { store, applied } = await PostgresStore.#open(options)
    await store.close()
    return applied
  }

  static async #open(options: PostgresStoreOptions): Promise<{ store: PostgresStore; applied: number[] }> {
    const schema = options.schema ?? 'outpost'
    quoteSchema(schema)
    const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolSize ?? 10 })
    // A connection that breaks while idle must not crash the relay: the next query reconnects.
    pool.on('error', () => undefined)
    let applied: number[]
    try {
      const client = await pool.connect()
      try {
        applied = await migrate(client, schema)
      } finally {
        client.release()
      }
    } catch (error) {
      await pool.end().catch(() => undefined)
      throw new StoreError(`Cannot open the Postgres store (${redact(options.connectionString)}, schema ${schema}): ${error instanceof Error ? error.message : String(error)}`, { schema }, { cause: error })
    }
    return { store: new PostgresStore(pool, schema), applied }
  }

  /** Resolves when Postgres answers a trivial query within `timeoutMs` (readiness); rejects otherwise. */
  async ping(timeoutMs = 2_000): Promise<void> {
    this.#check()
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      await Promise.race([
        this.#pool.query('select 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new StoreError(`Postgres did not answer within ${timeoutMs} ms`)), timeoutMs)
        }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Lock grants decided in this database, shared by every relay that uses it. */
  lockBackend(): PostgresLockBackend {
    return new PostgresLockBackend(this.#pool, this.#s)
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError('The Postgres store is closed; open a new one')
  }

  async #query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    this.#check()
    try {
      return await this.#pool.query<R>(text, values)
    } catch (error) {
      throw this.#wrap(error)
    }
  }

  #wrap(error: unknown): Error {
    if (isOutpostError(error)) return error
    if (this.#closed) return new StoreClosedError('The Postgres store was closed during a call')
    return new StoreError(`Postgres failed: ${error instanceof Error ? error.message : String(error)}`, undefined, { cause: error })
  }

  /** Runs `work` in one transaction on one connection; rolls back when it throws. */
  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    this.#check()
    let client: pg.PoolClient
    try {
      client = await this.#pool.connect()
    } catch (error) {
      throw this.#wrap(error)
    }
    try {
      await client.query('begin')
      const result = await work(client)
      await client.query('commit')
      return result
    } catch (error) {
      await client.query('rollback').catch(() => undefined)
      throw this.#wrap(error)
    } finally {
      client.release()
    }
  }

  // ───────────────────────────── Store (metadata) ─────────────────────────────

  async get(collection: string, key: string): Promise<Value | undefined> {
    checkName(collection, 'collection')
    checkName(key, 'key')
    const { rows } = await this.#query<{ value: Buffer }>(`select value from ${this.#s}.kv where collection = $1 and key = $2`, [utf16(collection), utf16(key)])
    return rows[0] === undefined ? undefined : decodeValue(rows[0].value)
  }

  async getMany(collection: string, keys: readonly string[]): Promise<(Value | undefined)[]> {
    checkName(collection, 'collection')
    keys.forEach((key) => checkName(key, 'key'))
    const { rows } = await this.#query<{ key: Buffer; value: Buffer }>(`select key, value from ${this.#s}.kv where collection = $1 and key = any($2::bytea[])`, [utf16(collection), keys.map(utf16)])
    const found = new Map(rows.map((r) => [fromUtf16(r.key), r.value]))
    return keys.map((key) => {
      const bytes = found.get(key)
      return bytes === undefined ? undefined : decodeValue(bytes)
    })
  }

  async scan(collection: string, options: ScanOptions = {}): Promise<StoreEntry[]> {
    checkName(collection, 'collection')
    if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit < 1)) throw new StoreError(`scan limit must be a positive integer, got ${String(options.limit)}`)
    const values: unknown[] = [utf16(collection)]
    let where = 'collection = $1'
    if (options.after !== undefined) {
      values.push(utf16(options.after))
      where += ` and key > $${values.length}`
    }
    let limit = ''
    if (options.limit !== undefined) {
      values.push(options.limit)
      limit = ` limit $${values.length}`
    }
    const { rows } = await this.#query<{ key: Buffer; value: Buffer }>(`select key, value from ${this.#s}.kv where ${where} order by key${limit}`, values)
    return rows.map((r) => ({ collection, key: fromUtf16(r.key), value: decodeValue(r.value) }))
  }

  async count(collection: string): Promise<number> {
    checkName(collection, 'collection')
    const { rows } = await this.#query<{ n: string }>(`select count(*) as n from ${this.#s}.kv where collection = $1`, [utf16(collection)])
    return Number(rows[0]?.n ?? 0)
  }

  async collections(): Promise<string[]> {
    const { rows } = await this.#query<{ collection: Buffer }>(`select distinct collection from ${this.#s}.kv order by collection`)
    return rows.map((r) => fromUtf16(r.collection))
  }

  async commit(batch: StoreBatch): Promise<{ readonly seq: number }> {
    this.#check()
    // Validate and encode everything first: a bad batch writes nothing.
    const puts = (batch.puts ?? []).map((entry, i) => {
      checkName(entry.collection, `puts[${i}].collection`)
      checkName(entry.key, `puts[${i}].key`)
      assertStoredValue(entry.value, `puts[${i}] (${entry.collection}/${entry.key})`)
      return [utf16(entry.collection), utf16(entry.key), Buffer.from(encode(entry.value))] as const
    })
    const deletes = (batch.deletes ?? []).map((entry, i) => {
      checkName(entry.collection, `deletes[${i}].collection`)
      checkName(entry.key, `deletes[${i}].key`)
      return [utf16(entry.collection), utf16(entry.key)] as const
    })
    const meta = (batch.meta ?? []).map((entry, i) => {
      checkName(entry.key, `meta[${i}].key`)
      if (entry.value !== null) assertStoredValue(entry.value, `meta[${i}] (${entry.key})`)
      return [utf16(entry.key), entry.value === null ? null : Buffer.from(encode(entry.value))] as const
    })
    // A later put of a key wins (one upsert may not touch a row twice).
    const latest = new Map<string, readonly [Buffer, Buffer, Buffer]>()
    for (const put of puts) latest.set(`${put[0].toString('hex')}:${put[1].toString('hex')}`, put)
    const unique = [...latest.values()]
    return this.#transaction(async (client) => {
      if (unique.length > 0) {
        await client.query(
          `insert into ${this.#s}.kv (collection, key, value) select * from unnest($1::bytea[], $2::bytea[], $3::bytea[]) on conflict (collection, key) do update set value = excluded.value`,
          [unique.map((p) => p[0]), unique.map((p) => p[1]), unique.map((p) => p[2])],
        )
      }
      // Deletes apply after puts: a key both put and deleted in one batch ends up deleted.
      for (const [collection, key] of deletes) await client.query(`delete from ${this.#s}.kv where collection = $1 and key = $2`, [collection, key])
      for (const [key, value] of meta) {
        if (value === null) await client.query(`delete from ${this.#s}.meta where key = $1`, [key])
        else await client.query(`insert into ${this.#s}.meta (key, value) values ($1, $2) on conflict (key) do update set value = excluded.value`, [key, value])
      }
      const { rows } = await client.query<{ seq: string }>(`update ${this.#s}.commit_seq set seq = seq + 1 where id = 1 returning seq`)
      return { seq: Number(rows[0]?.seq) }
    })
  }

  async getMeta(key: string): Promise<Value | undefined> {
    checkName(key, 'meta key')
    const { rows } = await this.#query<{ value: Buffer }>(`select value from ${this.#s}.meta where key = $1`, [utf16(key)])
    return rows[0] === undefined ? undefined : decodeValue(rows[0].value)
  }

  /**
   * Sets `key` only when it has no value yet, and returns the value it holds afterwards:
   * how relays sharing the store agree on one value (its identity, say) without a race.
   */
  async initMeta(key: string, value: Value): Promise<Value> {
    assertStoredValue(value, `meta (${key})`)
    await this.#query(`insert into ${this.#s}.meta (key, value) values ($1, $2) on conflict (key) do nothing`, [utf16(key), Buffer.from(encode(value))])
    return (await this.getMeta(key)) as Value
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#pool.end()
  }

  // ───────────────────────────── SyncStore (records) ─────────────────────────────

  async #mapRow(map: string, client?: pg.PoolClient, lock = false): Promise<MapRow | undefined> {
    const text = `select id, kind, head, floor, count from ${this.#s}.maps where name = $1${lock ? ' for update' : ''}`
    const { rows } = client === undefined ? await this.#query<RawMap>(text, [utf16(map)]) : await client.query<RawMap>(text, [utf16(map)])
    const row = rows[0]
    return row === undefined ? undefined : { id: row.id, kind: row.kind as CollectionKind, head: Number(row.head), floor: Number(row.floor), count: Number(row.count) }
  }

  async mapInfo(map: string): Promise<SyncMapInfo | undefined> {
    const row = await this.#mapRow(map)
    return row === undefined ? undefined : { kind: row.kind, head: row.head, floor: row.floor, count: row.count }
  }

  async syncMaps(): Promise<string[]> {
    const { rows } = await this.#query<{ name: Buffer }>(`select name from ${this.#s}.maps order by name`)
    return rows.map((r) => fromUtf16(r.name))
  }

  async getRecords(map: string, keys: readonly string[]): Promise<(SyncRecord | undefined)[]> {
    const row = await this.#mapRow(map)
    if (row === undefined || keys.length === 0) return keys.map(() => undefined)
    const { rows } = await this.#query<RawRecord>(
      `select r.key, r.seq, r.state from ${this.#s}.records r join unnest($2::int[], $3::bytea[]) as k(leaf, key) on r.leaf = k.leaf and r.key = k.key where r.map_id = $1`,
      [row.id, keys.map(leafOf), keys.map(utf16)],
    )
    const found = new Map(rows.map((r) => [fromUtf16(r.key), r]))
    return keys.map((key) => {
      const r = found.get(key)
      return r === undefined ? undefined : { key, seq: Number(r.seq), state: decodeValue(r.state) as unknown as CrdtState }
    })
  }

  async scanRecords(map: string, scan: RecordScan): Promise<SyncRecord[]> {
    if (!Number.isInteger(scan.limit) || scan.limit < 1) throw new StoreError(`scan limit must be a positive integer, got ${String(scan.limit)}`)
    const row = await this.#mapRow(map)
    if (row === undefined) return []
    const values: unknown[] = [row.id]
    let where = 'map_id = $1'
    if (scan.within !== undefined) {
      const low = Number.parseInt(scan.within.padEnd(SYNC_TREE_DEPTH, '0'), 16)
      const high = Number.parseInt(scan.within.padEnd(SYNC_TREE_DEPTH, 'f'), 16)
      values.push(low, high)
      where += ` and leaf between $${values.length - 1} and $${values.length}`
    }
    if (scan.after !== undefined) {
      values.push(leafOf(scan.after), utf16(scan.after))
      where += ` and (leaf, key) > ($${values.length - 1}, $${values.length})`
    }
    values.push(scan.limit)
    const { rows } = await this.#query<RawRecord>(`select key, seq, state from ${this.#s}.records where ${where} order by leaf, key limit $${values.length}`, values)
    return rows.map((r) => ({ key: fromUtf16(r.key), seq: Number(r.seq), state: decodeValue(r.state) as unknown as CrdtState }))
  }

  async readLog(map: string, afterSeq: number, limit: number): Promise<SyncLogEntry[]> {
    const row = await this.#mapRow(map)
    if (row === undefined) return []
    const { rows } = await this.#query<{ seq: string; key: Buffer; before: Buffer | null }>(`select seq, key, before from ${this.#s}.log where map_id = $1 and seq > $2 order by seq limit $3`, [row.id, afterSeq, limit])
    return rows.map((r) => (r.before === null ? { seq: Number(r.seq), key: fromUtf16(r.key) } : { seq: Number(r.seq), key: fromUtf16(r.key), before: decodeValue(r.before) }))
  }

  async leafSums(map: string): Promise<{ head: number; leaves: [string, HashSum][] }> {
    // One snapshot: the sums and `head` must agree.
    return this.#transaction(async (client) => {
      await client.query('set transaction isolation level repeatable read')
      const row = await this.#mapRow(map, client)
      if (row === undefined) return { head: 0, leaves: [] }
      const { rows } = await client.query<{ leaf: number; hi: string; lo: string; count: string }>(`select leaf, hi, lo, count from ${this.#s}.leaves where map_id = $1 order by leaf`, [row.id])
      return { head: row.head, leaves: rows.map((r) => [leafHex(r.leaf), { hi: Number(r.hi), lo: Number(r.lo), count: Number(r.count) }]) }
    })
  }

  async applyWrites(requests: readonly WriteRequest[]): Promise<WriteOutcome[]> {
    if (requests.length === 0) return []
    return this.#transaction(async (client) => {
      // 1. Lock every map written, in name order (no deadlock between two transactions).
      const names = [...new Set(requests.map((r) => r.map))].sort((a, b) => Buffer.compare(utf16(a), utf16(b)))
      const rows = new Map<string, MapRow>()
      const created = new Set<string>()
      for (const name of names) {
        let row = await this.#mapRow(name, client, true)
        if (row === undefined) {
          // The first write of a new map: create its row now (locked: we hold the insert), drop it at the end if nothing landed.
          const kind = (requests.find((r) => r.map === name) as WriteRequest).kind
          const inserted = await client.query<{ id: number }>(`insert into ${this.#s}.maps (name, kind) values ($1, $2) on conflict (name) do nothing returning id`, [utf16(name), kind])
          if (inserted.rows[0] !== undefined) created.add(name)
          row = (await this.#mapRow(name, client, true)) as MapRow
        }
        rows.set(name, row)
      }
      // 2. Read the current records (the maps' row locks keep other writers of these maps out).
      const current = new Map<string, SyncRecord>()
      for (const name of names) {
        const row = rows.get(name) as MapRow
        const keys = [...new Set(requests.filter((r) => r.map === name).map((r) => r.key))]
        const { rows: found } = await client.query<RawRecord>(
          `select r.key, r.seq, r.state from ${this.#s}.records r join unnest($2::int[], $3::bytea[]) as k(leaf, key) on r.leaf = k.leaf and r.key = k.key where r.map_id = $1`,
          [row.id, keys.map(leafOf), keys.map(utf16)],
        )
        for (const r of found) {
          const key = fromUtf16(r.key)
          current.set(`${name}\u0000${key}`, { key, seq: Number(r.seq), state: decodeValue(r.state) as unknown as CrdtState })
        }
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
          `insert into ${this.#s}.records (map_id, leaf, key, seq, state) select * from unnest($1::int[], $2::int[], $3::bytea[], $4::bigint[], $5::bytea[]) on conflict (map_id, leaf, key) do update set seq = excluded.seq, state = excluded.state`,
          [list.map((w) => (rows.get(w.map) as MapRow).id), list.map((w) => leafOf(w.record.key)), list.map((w) => utf16(w.record.key)), list.map((w) => w.record.seq), list.map((w) => Buffer.from(encode(w.record.state as unknown as Value)))],
        )
        await client.query(
          `insert into ${this.#s}.log (map_id, seq, key, before) select * from unnest($1::int[], $2::bigint[], $3::bytea[], $4::bytea[])`,
          [writes.map((w) => (rows.get(w.map) as MapRow).id), writes.map((w) => w.record.seq), writes.map((w) => utf16(w.record.key)), writes.map((w) => (w.before === undefined ? null : Buffer.from(encode(w.before))))],
        )
        await this.#patchLeaves(client, rows, writes.map((w) => ({ map: w.map, key: w.record.key, remove: w.previous?.state, add: w.record.state })))
      }
      for (const name of names) {
        const row = rows.get(name) as MapRow
        if (created.has(name) && !writes.some((w) => w.map === name)) await client.query(`delete from ${this.#s}.maps where id = $1`, [row.id])
        else await client.query(`update ${this.#s}.maps set head = $2, count = $3 where id = $1`, [row.id, row.head, row.count])
      }
      return outcomes
    })
  }

  /** Applies entry-hash changes to the touched leaves (read for update, rewritten once each). */
  async #patchLeaves(client: pg.PoolClient, rows: ReadonlyMap<string, MapRow>, changes: readonly { map: string; key: string; remove: CrdtState | undefined; add: CrdtState | undefined }[]): Promise<void> {
    const sums = new Map<string, { mapId: number; leaf: number; sum: HashSum }>()
    const touched = new Map<string, { mapId: number; leaf: number }>()
    for (const change of changes) {
      const row = rows.get(change.map) as MapRow
      const leaf = leafOf(change.key)
      touched.set(`${row.id}:${leaf}`, { mapId: row.id, leaf })
    }
    const list = [...touched.values()].sort((a, b) => a.mapId - b.mapId || a.leaf - b.leaf)
    const { rows: found } = await client.query<{ map_id: number; leaf: number; hi: string; lo: string; count: string }>(
      `select l.map_id, l.leaf, l.hi, l.lo, l.count from ${this.#s}.leaves l join unnest($1::int[], $2::int[]) as t(map_id, leaf) on l.map_id = t.map_id and l.leaf = t.leaf order by l.map_id, l.leaf for update of l`,
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
        `insert into ${this.#s}.leaves (map_id, leaf, hi, lo, count) select * from unnest($1::int[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[]) on conflict (map_id, leaf) do update set hi = excluded.hi, lo = excluded.lo, count = excluded.count`,
        [keep.map((s) => s.mapId), keep.map((s) => s.leaf), keep.map((s) => s.sum.hi), keep.map((s) => s.sum.lo), keep.map((s) => s.sum.count)],
      )
    }
    if (drop.length > 0) {
      await client.query(`delete from ${this.#s}.leaves l using unnest($1::int[], $2::int[]) as t(map_id, leaf) where l.map_id = t.map_id and l.leaf = t.leaf`, [drop.map((s) => s.mapId), drop.map((s) => s.leaf)])
    }
  }

  async trimLog(map: string, throughSeq: number): Promise<number> {
    return this.#transaction(async (client) => {
      const row = await this.#mapRow(map, client, true)
      if (row === undefined) return 0
      const through = Math.min(throughSeq, row.head)
      const { rowCount } = await client.query(`delete from ${this.#s}.log where map_id = $1 and seq <= $2`, [row.id, through])
      if (through > row.floor) await client.query(`update ${this.#s}.maps set floor = $2 where id = $1`, [row.id, through])
      return rowCount ?? 0
    })
  }

  async removeRecords(map: string, keys: readonly string[], still: (record: SyncRecord) => boolean): Promise<string[]> {
    if (keys.length === 0) return []
    return this.#transaction(async (client) => {
      const row = await this.#mapRow(map, client, true)
      if (row === undefined) return []
      const { rows: found } = await client.query<RawRecord>(
        `select r.key, r.seq, r.state from ${this.#s}.records r join unnest($2::int[], $3::bytea[]) as k(leaf, key) on r.leaf = k.leaf and r.key = k.key where r.map_id = $1`,
        [row.id, keys.map(leafOf), keys.map(utf16)],
      )
      const doomed = found.map((r) => ({ key: fromUtf16(r.key), seq: Number(r.seq), state: decodeValue(r.state) as unknown as CrdtState })).filter(still)
      if (doomed.length === 0) return []
      await client.query(`delete from ${this.#s}.records r using unnest($2::int[], $3::bytea[]) as k(leaf, key) where r.map_id = $1 and r.leaf = k.leaf and r.key = k.key`, [row.id, doomed.map((r) => leafOf(r.key)), doomed.map((r) => utf16(r.key))])
      await this.#patchLeaves(client, new Map([[map, row]]), doomed.map((r) => ({ map, key: r.key, remove: r.state, add: undefined })))
      await client.query(`update ${this.#s}.maps set count = count - $2 where id = $1`, [row.id, doomed.length])
      return doomed.map((r) => r.key)
    })
  }
}

interface RawMap {
  id: number
  kind: string
  head: string
  floor: string
  count: string
}

interface RawRecord {
  key: Buffer
  seq: string
  state: Buffer
}

/** A connection string without its password, for messages. */
export function redact(connectionString: string): string {
  return connectionString.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@')
}

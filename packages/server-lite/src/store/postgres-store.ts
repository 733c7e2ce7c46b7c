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
  InvalidKeyError,
  SYNC_TREE_DEPTH,
  StoreClosedError,
  StoreError,
  assertStoredValue,
  encode,
  isOutpostError,
  type HashSum,
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
import { fromUtf16, leafHex, leafOf, utf16 } from './key-bytes'
import { decodeValue, recordOf, selectMapRow, selectRecords, type MapRow, type RawRecord } from './postgres-rows'
import { migrate, quoteSchema } from './postgres-schema'
import { applyWritesIn, patchLeaves } from './postgres-writes'
import { PostgresLockBackend } from './postgres-locks'

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

  /** `work` on the pool, with the store's closed check and error wrapping. */
  async #read<T>(work: (db: pg.Pool) => Promise<T>): Promise<T> {
    this.#check()
    try {
      return await work(this.#pool)
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
    if (client !== undefined) return selectMapRow(client, this.#s, map, lock)
    return this.#read((db) => selectMapRow(db, this.#s, map))
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
    const found = new Map((await this.#read((db) => selectRecords(db, this.#s, row.id, keys))).map((r) => [r.key, r]))
    return keys.map((key) => found.get(key))
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
    return rows.map(recordOf)
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
    return this.#transaction((client) => applyWritesIn(client, this.#s, requests))
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
      const doomed = (await selectRecords(client, this.#s, row.id, keys)).filter(still)
      if (doomed.length === 0) return []
      await client.query(`delete from ${this.#s}.records r using unnest($2::int[], $3::bytea[]) as k(leaf, key) where r.map_id = $1 and r.leaf = k.leaf and r.key = k.key`, [row.id, doomed.map((r) => leafOf(r.key)), doomed.map((r) => utf16(r.key))])
      await patchLeaves(client, this.#s, new Map([[map, row]]), doomed.map((r) => ({ map, key: r.key, remove: r.state, add: undefined })))
      await client.query(`update ${this.#s}.maps set count = count - $2 where id = $1`, [row.id, doomed.length])
      return doomed.map((r) => r.key)
    })
  }
}

/** A connection string without its password, for messages. */
export function redact(connectionString: string): string {
  return connectionString.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@')
}

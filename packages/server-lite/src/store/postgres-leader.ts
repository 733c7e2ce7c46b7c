/**
 * Singleton jobs (tombstone GC, change-log retention) run on one relay at a time among the
 * relays sharing a Postgres schema. The relay that holds a session-level advisory lock, on
 * a connection of its own (outside the pool, so no pooled query ever releases it), runs
 * them; the others ask again at each tick. When the holder dies or its connection breaks,
 * Postgres releases the lock with the session and the next relay to ask takes over.
 *
 * Session-level advisory locks need a direct connection to Postgres: behind a transaction
 * pooler (PgBouncer in transaction mode) the lock would stay with a server connection
 * other clients reuse. The connection's `application_name` is `outpost-jobs:<schema>`, so
 * `pg_stat_activity` shows which relay leads.
 */
import { createHash } from 'node:crypto'
import pg from 'pg'

/** Whether this relay runs singleton jobs now. */
export interface JobLeadership {
  /** True while this relay holds the jobs lock (trying to take it when it does not). */
  lead(): Promise<boolean>
  /** Releases the lock (closes its connection). */
  close(): Promise<void>
}

/** One relay alone (LMDB): always the leader. */
export const ALONE: JobLeadership = { lead: async () => true, close: async () => undefined }

/** The two 32-bit keys of the advisory lock of `schema`'s jobs. */
function lockKeys(schema: string): [number, number] {
  const digest = createHash('sha256').update(`outpost-jobs:${schema}`).digest()
  return [digest.readInt32BE(0), digest.readInt32BE(4)]
}

/** Leadership over `schema`'s singleton jobs through a Postgres advisory lock; see the module comment. */
export class PostgresLeadership implements JobLeadership {
  readonly #connectionString: string
  readonly #keys: [number, number]
  readonly #name: string
  #client: pg.Client | undefined
  #held = false
  #closed = false

  constructor(connectionString: string, schema: string) {
    this.#connectionString = connectionString
    this.#keys = lockKeys(schema)
    this.#name = `outpost-jobs:${schema}`.slice(0, 63)
  }

  async lead(): Promise<boolean> {
    if (this.#closed) return false
    if (this.#held && this.#client !== undefined) return true
    try {
      if (this.#client === undefined) {
        const client = new pg.Client({ connectionString: this.#connectionString, connectionTimeoutMillis: 5_000, application_name: this.#name })
        // A broken connection released the lock with its session: lead again only after re-taking it.
        client.on('error', () => this.#drop(client))
        client.on('end', () => this.#drop(client))
        await client.connect()
        this.#client = client
      }
      const { rows } = await this.#client.query<{ locked: boolean }>('select pg_try_advisory_lock($1, $2) as locked', this.#keys)
      this.#held = rows[0]?.locked === true
    } catch {
      if (this.#client !== undefined) this.#drop(this.#client)
    }
    return this.#held
  }

  #drop(client: pg.Client): void {
    if (this.#client !== client) return
    this.#client = undefined
    this.#held = false
    client.end().catch(() => undefined)
  }

  async close(): Promise<void> {
    this.#closed = true
    const client = this.#client
    this.#client = undefined
    this.#held = false
    await client?.end().catch(() => undefined)
  }
}

/**
 * Where lock grants are decided when several relays share one Postgres: one row per lock,
 * the fencing token committed in the same transaction as the grant, and leases timed by
 * Postgres's clock (`now()`), not the relays'. A token is handed out only after its
 * transaction committed.
 *
 * ## Tokens across failovers
 * A token is `timeline × 2^40 + counter`, where `timeline` is the Postgres timeline at the
 * grant (`pg_control_checkpoint()`). A promoted standby starts a new timeline, so even if
 * the failover lost the last commits (asynchronous replication) and the counter restarts
 * from an older value, every token issued after the failover is greater than every token
 * issued before it: tokens strictly increase across relays, relay restarts, Postgres
 * restarts and failovers. (A grant the failover lost is also a lease nobody knows of: its
 * holder finds its token refused by the fencing check, and acquires again.)
 */
import type pg from 'pg'
import type { GrantAttempt, LockBackend, StoredLock } from '../primitives/lock-backend'
import { fromUtf16, utf16 } from './key-bytes'

/** Tokens per timeline (2^40: about 10^12 grants per lock before the timeline must change). */
const TIMELINE_SPAN = 2 ** 40

interface Row {
  counter: string
  timeline: number
  subject: Buffer | null
  expires_at_ms: string | null
  now_ms: string
}

function tokenOf(timeline: number, counter: number): number {
  return timeline * TIMELINE_SPAN + counter
}

/** Lock grants decided in Postgres; see the module comment. */
export class PostgresLockBackend implements LockBackend {
  readonly #pool: pg.Pool
  readonly #s: string

  /** `schema` is quoted already (see `quoteSchema`). */
  constructor(pool: pg.Pool, quotedSchema: string) {
    this.#pool = pool
    this.#s = quotedSchema
  }

  async #timeline(client: pg.PoolClient): Promise<number> {
    const { rows } = await client.query<{ timeline_id: number }>('select timeline_id from pg_control_checkpoint()')
    return Number(rows[0]?.timeline_id ?? 1)
  }

  async #row(client: pg.PoolClient, name: string, lock: boolean): Promise<Row | undefined> {
    const { rows } = await client.query<Row>(
      `select counter, timeline, subject, (extract(epoch from expires_at) * 1000)::bigint as expires_at_ms, (extract(epoch from clock_timestamp()) * 1000)::bigint as now_ms from ${this.#s}.locks where name = $1${lock ? ' for update' : ''}`,
      [utf16(name)],
    )
    return rows[0]
  }

  async #tx<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect()
    try {
      await client.query('begin')
      const result = await work(client)
      await client.query('commit')
      return result
    } catch (error) {
      await client.query('rollback').catch(() => undefined)
      throw error
    } finally {
      client.release()
    }
  }

  /** The lock's current token and live lease. */
  async read(name: string): Promise<StoredLock> {
    return this.#tx(async (client) => {
      const row = await this.#row(client, name, false)
      const now = row === undefined ? await this.#now(client) : Number(row.now_ms)
      if (row === undefined) return { current: 0, lease: undefined, now }
      const current = tokenOf(row.timeline, Number(row.counter))
      const expiresAt = row.expires_at_ms === null ? 0 : Number(row.expires_at_ms)
      const lease = row.subject !== null && expiresAt > now ? { token: current, expiresAt, subject: fromUtf16(row.subject) } : undefined
      return { current, lease, now }
    })
  }

  async #now(client: pg.PoolClient): Promise<number> {
    const { rows } = await client.query<{ now_ms: string }>('select (extract(epoch from clock_timestamp()) * 1000)::bigint as now_ms')
    return Number(rows[0]?.now_ms)
  }

  /** Grants the lock to `subject` for `ttl` ms when it is free (or its lease expired), in one committed transaction. */
  async grant(name: string, subject: string, ttl: number): Promise<GrantAttempt> {
    return this.#tx(async (client) => {
      await client.query(`insert into ${this.#s}.locks (name, counter, timeline) values ($1, 0, 1) on conflict (name) do nothing`, [utf16(name)])
      const row = (await this.#row(client, name, true)) as Row
      const now = Number(row.now_ms)
      const expiresAt = row.expires_at_ms === null ? 0 : Number(row.expires_at_ms)
      if (row.subject !== null && expiresAt > now) return { granted: false, holderUntil: expiresAt, now }
      const timeline = Math.max(await this.#timeline(client), row.timeline)
      // A new timeline restarts the counter: its tokens are already above every older one.
      const counter = timeline > row.timeline ? 1 : Number(row.counter) + 1
      const { rows } = await client.query<{ expires_at_ms: string }>(
        `update ${this.#s}.locks set counter = $2, timeline = $3, subject = $4, expires_at = clock_timestamp() + ($5 || ' milliseconds')::interval where name = $1 returning (extract(epoch from expires_at) * 1000)::bigint as expires_at_ms`,
        [utf16(name), counter, timeline, utf16(subject), String(ttl)],
      )
      return { granted: true, lease: { token: tokenOf(timeline, counter), expiresAt: Number(rows[0]?.expires_at_ms), subject } }
    })
  }

  /** Extends the lease `token` of `subject` by `ttl` ms from now; undefined when it is not the current live lease. */
  async extend(name: string, token: number, subject: string, ttl: number): Promise<number | undefined> {
    const { rows } = await this.#pool.query<{ expires_at_ms: string }>(
      `update ${this.#s}.locks set expires_at = clock_timestamp() + ($4 || ' milliseconds')::interval where name = $1 and timeline * ${TIMELINE_SPAN}::numeric + counter = $2 and subject = $3 and expires_at > clock_timestamp() returning (extract(epoch from expires_at) * 1000)::bigint as expires_at_ms`,
      [utf16(name), token, utf16(subject), String(ttl)],
    )
    return rows[0] === undefined ? undefined : Number(rows[0].expires_at_ms)
  }

  /** Ends the lease `token` of `subject`; false when it was not the current live lease. */
  async release(name: string, token: number, subject: string): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `update ${this.#s}.locks set subject = null, expires_at = null where name = $1 and timeline * ${TIMELINE_SPAN}::numeric + counter = $2 and subject = $3 and expires_at > clock_timestamp()`,
      [utf16(name), token, utf16(subject)],
    )
    return (rowCount ?? 0) > 0
  }
}

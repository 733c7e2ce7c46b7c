/**
 * The {@link Bus} on PostgreSQL's LISTEN/NOTIFY, for relays that share a `PostgresStore`.
 *
 * ## Sending: one NOTIFY per flush, never per change
 * `NOTIFY` takes a database-wide lock at commit (measured here: 8 notifying writers went
 * from 8.2k to 2.8k tx/s), so a relay never notifies per change. Publishes go into one queue
 * per relay, flushed by one transaction at a time: whatever was published while the previous
 * flush ran goes out together, as one packet in one NOTIFY. A relay therefore holds the
 * notify lock at most once at a time, however many writers it serves, and under load one
 * NOTIFY carries many committed batches. One queue and one transaction at a time also give
 * the publish order: NOTIFYs are delivered in commit order.
 *
 * A packet whose text (base64) is over {@link NOTIFY_PAYLOAD_BYTES} goes into the UNLOGGED
 * table `bus_messages` in the same statement as its NOTIFY, which then carries the row's id;
 * rows older than `retentionMs` are pruned. A relay that reads such an id too late (pruned,
 * or lost in a Postgres crash) signals `overrun`.
 *
 * ## Receiving: a dedicated LISTEN connection
 * LISTEN needs one session that stays put, so it is a `pg.Client` of its own, never a pool
 * connection — and never through a transaction pooler (PgBouncer in transaction mode gives
 * each transaction any server session, so LISTEN silently hears nothing). Notifications are
 * handled one at a time, in order (a stored packet is fetched before the next one is looked at).
 * A heartbeat query every `heartbeatMs` (with that as its timeout) finds a connection that
 * died without a word. When LISTEN is lost the bus reports `disconnected`, retries with
 * exponential backoff and jitter, and on success reports `reconnected` — NOTIFYs sent
 * meanwhile are gone, so the relay catches up from its last sequence in the store.
 *
 * ## Polling: the fallback for hints
 * Every `pollIntervalMs` the bus reads the maps' heads (`maps.head`, one row per map; only
 * the maps `watchedMaps()` names, when given) and delivers a hint for every head that moved
 * past what it knew from hints received, hints it published and the previous poll. A hint
 * lost for any reason (a relay that died between commit and NOTIFY, a dropped LISTEN) thus
 * arrives within one interval. The first poll, at open, only learns the heads.
 *
 * Connections per relay: the LISTEN client plus a pool of two (the publish queue, polls and
 * fetches).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { BusBase, BusError, decodeBusPacket, encodeBusPacket, type BusBaseOptions, type BusItem, type MapHint } from '@outpost/core'
import { redact } from '../store/postgres-store'
import { NOTIFY_PAYLOAD_BYTES, UNDEFINED_TABLE, channelFor, ensureBusTable, insertAndNotify, nameBytes, nameFromBytes, pruneMessages, quoteIdent, quoteSchema, selectHeads, selectMessage } from './postgres-bus-sql'
import { ReconnectBackoff } from './reconnect-backoff'

/** Options of {@link PostgresBus.open}. */
export interface PostgresBusOptions extends BusBaseOptions {
  /** A `postgres://` URL: a direct connection (or a session-mode pooler), not a transaction pooler. */
  readonly connectionString: string
  /** The schema of the relays' store (default `outpost`); the bus's table goes there, and its channel is named after it. */
  readonly schema?: string
  /** How often to poll the maps' heads, ms (default 2,000; 0 turns polling off). */
  readonly pollIntervalMs?: number
  /** The maps to poll (e.g. those with live subscribers on this relay); all maps when absent or when it returns undefined. */
  readonly watchedMaps?: () => Iterable<string> | undefined
  /** How long a large packet stays in `bus_messages`, ms (default 60,000). */
  readonly retentionMs?: number
  /** How often the LISTEN connection is checked, ms, and how long the check may take (default 10,000). */
  readonly heartbeatMs?: number
  /** First reconnect delay, ms (default 100); it doubles per failed attempt up to `reconnectMaxMs` (default 5,000). */
  readonly reconnectMinMs?: number
  readonly reconnectMaxMs?: number
  /** How long one connection attempt may take, ms (default 5,000). */
  readonly connectTimeoutMs?: number
  /** Randomness for the reconnect jitter (default `Math.random`). */
  readonly random?: () => number
}

/** A flush packs queued messages into one packet up to this many bytes (a larger single message goes alone). */
const PACKET_TARGET_BYTES = 1024 * 1024
/** Notifications waiting to be handled; beyond this the bus drops them and signals `overrun`. */
const MAX_INBOUND = 10_000

interface Pending {
  readonly bytes: Uint8Array
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** The Postgres LISTEN/NOTIFY bus; see the module comment. Open it with {@link PostgresBus.open}. */
export class PostgresBus extends BusBase {
  /** Always `'postgres'`. */
  readonly name = 'postgres'
  /** The schema holding `bus_messages` and the store's `maps`. */
  readonly schema: string
  /** The NOTIFY channel. */
  readonly channel: string
  /** The `application_name` of this instance's connections (find them in `pg_stat_activity`). */
  readonly applicationName: string
  readonly #options: PostgresBusOptions
  readonly #pool: pg.Pool
  readonly #maxPacketBytes: number
  readonly #backoff: ReconnectBackoff
  #listener: pg.Client | undefined
  readonly #dead = new WeakSet<pg.Client>()
  #pollTimer: NodeJS.Timeout | undefined
  #heartbeatTimer: NodeJS.Timeout | undefined
  readonly #queue: Pending[] = []
  #flushing: Promise<void> | undefined
  readonly #inbound: string[] = []
  #draining = false
  readonly #heads = new Map<string, number>()
  #polling = false
  #beating = false
  #lastPrune = 0

  private constructor(options: PostgresBusOptions, schema: string) {
    super(randomBytes(8).toString('hex'), options)
    this.#options = options
    this.schema = schema
    this.channel = channelFor(schema)
    this.applicationName = `outpost-bus ${this.node}`
    this.#backoff = new ReconnectBackoff({ minMs: options.reconnectMinMs, maxMs: options.reconnectMaxMs, random: options.random })
    this.#maxPacketBytes = Math.max(this.limits.maxMessageBytes, PACKET_TARGET_BYTES) + 1024
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: 2, application_name: this.applicationName, connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000 })
    // An idle pool connection that breaks must not crash the relay: the next query reconnects.
    this.#pool.on('error', (error) => this.noteError(error))
  }

  /** Creates `bus_messages` if needed, starts LISTEN, learns the maps' heads, and returns the connected bus. */
  static async open(options: PostgresBusOptions): Promise<PostgresBus> {
    const schema = options.schema ?? 'outpost'
    quoteSchema(schema)
    const bus = new PostgresBus(options, schema)
    try {
      await bus.#start()
    } catch (error) {
      await bus.close().catch(() => undefined)
      throw new BusError(`Cannot open the Postgres bus (${redact(options.connectionString)}, schema ${schema}): ${message(error)}`, { schema }, { cause: error })
    }
    return bus
  }

  async #start(): Promise<void> {
    const client = await this.#pool.connect()
    try {
      await ensureBusTable(client, this.schema)
    } finally {
      client.release()
    }
    this.#listener = await this.#connectListener()
    await this.#poll(false)
    const poll = this.#options.pollIntervalMs ?? 2_000
    if (poll > 0) this.#pollTimer = setInterval(() => void this.#poll(true), poll).unref()
    this.#heartbeatTimer = setInterval(() => void this.#heartbeat(), this.#options.heartbeatMs ?? 10_000).unref()
    this.connectionEvent('connected')
  }

  // ───────────────────────────── sending ─────────────────────────────

  protected transmit(item: BusItem, bytes: Uint8Array): Promise<void> {
    if (item.kind === 'hints') this.#learn(item.hints)
    return new Promise((resolve, reject) => {
      this.#queue.push({ bytes, resolve, reject })
      // Deferred by a microtask, so everything published in this turn shares one flush.
      this.#flushing ??= Promise.resolve().then(() => this.#flushAll())
    })
  }

  async #flushAll(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = [this.#queue.shift() as Pending]
      let bytes = batch[0]?.bytes.length ?? 0
      while (this.#queue.length > 0 && bytes + (this.#queue[0] as Pending).bytes.length <= PACKET_TARGET_BYTES) {
        const next = this.#queue.shift() as Pending
        bytes += next.bytes.length
        batch.push(next)
      }
      try {
        await this.#send(batch.map((p) => p.bytes))
        for (const p of batch) p.resolve()
      } catch (error) {
        const failure = new BusError(`Could not publish on the Postgres bus: ${message(error)}. Other relays catch up from the store`, undefined, { cause: error })
        for (const p of batch) p.reject(failure)
      }
    }
    this.#flushing = undefined
  }

  /** One packet, one statement, one NOTIFY. */
  async #send(items: readonly Uint8Array[]): Promise<void> {
    const packet = encodeBusPacket(this.node, items)
    const text = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength).toString('base64')
    const inline = `i${this.node} ${text}`
    if (inline.length <= NOTIFY_PAYLOAD_BYTES) {
      await this.#pool.query('select pg_notify($1, $2)', [this.channel, inline])
      return
    }
    await this.#pool.query(insertAndNotify(this.schema), [Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength), this.channel, `r${this.node} `])
    await this.#prune()
  }

  async #prune(): Promise<void> {
    const retention = this.#options.retentionMs ?? 60_000
    if (this.now() - this.#lastPrune < retention / 2) return
    this.#lastPrune = this.now()
    await this.#pool.query(pruneMessages(this.schema), [retention]).catch((error: unknown) => this.noteError(error))
  }

  // ───────────────────────────── receiving ─────────────────────────────

  async #connectListener(): Promise<pg.Client> {
    const heartbeat = this.#options.heartbeatMs ?? 10_000
    const client = new pg.Client({
      connectionString: this.#options.connectionString,
      application_name: this.applicationName,
      keepAlive: true,
      connectionTimeoutMillis: this.#options.connectTimeoutMs ?? 5_000,
      query_timeout: heartbeat,
    })
    client.on('error', (error) => this.#lost(client, error))
    client.on('end', () => this.#lost(client))
    client.on('notification', (notification) => this.#onNotification(notification))
    try {
      await client.connect()
      await client.query(`listen ${quoteIdent(this.channel)}`)
    } catch (error) {
      this.#dead.add(client)
      void client.end().catch(() => undefined)
      throw error
    }
    return client
  }

  #onNotification(notification: pg.Notification): void {
    const payload = notification.payload
    if (notification.channel !== this.channel || payload === undefined) return
    // Own packets come back on our LISTEN: skip them before any decoding.
    if (payload.startsWith(this.node, 1) && payload[this.node.length + 1] === ' ') return
    if (this.#inbound.length >= MAX_INBOUND) {
      this.#inbound.length = 0
      this.signal({ type: 'overrun', reason: `more than ${MAX_INBOUND} bus messages were waiting; they were dropped` })
      return
    }
    this.#inbound.push(payload)
    if (!this.#draining) void this.#drain()
  }

  async #drain(): Promise<void> {
    this.#draining = true
    try {
      while (this.#inbound.length > 0 && this.state !== 'closed') await this.#handle(this.#inbound.shift() as string)
    } finally {
      this.#draining = false
    }
  }

  async #handle(payload: string): Promise<void> {
    try {
      const space = payload.indexOf(' ')
      const rest = payload.slice(space + 1)
      let bytes: Uint8Array
      if (payload[0] === 'i') bytes = Buffer.from(rest, 'base64')
      else if (payload[0] === 'r' && /^\d+$/.test(rest)) {
        const { rows } = await this.#pool.query<{ body: Buffer }>(selectMessage(this.schema), [rest])
        if (rows[0] === undefined) {
          this.signal({ type: 'overrun', reason: `bus message ${rest} was pruned (or lost in a Postgres restart) before this relay read it` })
          return
        }
        bytes = rows[0].body
      } else throw new Error(`not an Outpost bus notification (${payload.slice(0, 16)}…)`)
      const packet = decodeBusPacket(bytes, this.#maxPacketBytes)
      for (const item of packet.items) if (item.kind === 'hints') this.#learn(item.hints)
      this.deliver(packet.node, packet.items)
    } catch (error) {
      this.signal({ type: 'overrun', reason: `a bus message could not be read and is lost: ${message(error)}` })
    }
  }

  /** Remembers heads announced by hints, so a poll does not announce them again. */
  #learn(hints: readonly MapHint[]): void {
    for (const hint of hints) if ((this.#heads.get(hint.map) ?? -1) < hint.seq) this.#heads.set(hint.map, hint.seq)
  }

  /** Reads the heads and delivers hints for those that moved (`emit`; the first poll only learns them). */
  async #poll(emit: boolean): Promise<void> {
    if (this.#polling || this.state === 'closed') return
    this.#polling = true
    try {
      const watched = this.#options.watchedMaps?.()
      const names = watched === undefined ? undefined : [...watched]
      if (names?.length === 0) return
      const { rows } = await this.#pool.query<{ name: Buffer; head: string }>(selectHeads(this.schema, names !== undefined), names === undefined ? [] : [names.map(nameBytes)])
      const found: MapHint[] = []
      for (const row of rows) {
        const map = nameFromBytes(row.name)
        const head = Number(row.head)
        if ((this.#heads.get(map) ?? -1) >= head) continue
        this.#heads.set(map, head)
        if (emit) found.push({ map, seq: head })
      }
      // Only watched maps are remembered when a watch list is given: memory follows what this relay serves.
      if (names !== undefined) {
        const keep = new Set(names)
        for (const map of this.#heads.keys()) if (!keep.has(map)) this.#heads.delete(map)
      }
      this.deliverFound(found)
      await this.#prune()
    } catch (error) {
      // No `maps` table yet: the store has not migrated this schema, so there is nothing to poll.
      if ((error as { code?: unknown }).code !== UNDEFINED_TABLE) this.noteError(error)
    } finally {
      this.#polling = false
    }
  }

  // ───────────────────────────── connection ─────────────────────────────

  async #heartbeat(): Promise<void> {
    const client = this.#listener
    if (client === undefined || this.#beating) return
    this.#beating = true
    try {
      await client.query('select 1')
    } catch (error) {
      this.#lost(client, error)
    } finally {
      this.#beating = false
    }
  }

  #lost(client: pg.Client, error?: unknown): void {
    this.#dead.add(client)
    if (client !== this.#listener) return
    this.#listener = undefined
    void client.end().catch(() => undefined)
    if (this.state === 'closed') return
    this.connectionEvent('lost', error === undefined ? 'the LISTEN connection ended' : `the LISTEN connection failed: ${message(error)}`)
    this.#scheduleReconnect()
  }

  #scheduleReconnect(): void {
    if (this.state !== 'closed') this.#backoff.schedule(() => void this.#reconnect())
  }

  async #reconnect(): Promise<void> {
    let client: pg.Client
    try {
      client = await this.#connectListener()
    } catch (error) {
      this.noteError(error)
      this.#scheduleReconnect()
      return
    }
    if (this.state === 'closed') {
      this.#dead.add(client)
      void client.end().catch(() => undefined)
      return
    }
    if (this.#dead.has(client)) {
      this.#scheduleReconnect()
      return
    }
    this.#listener = client
    this.#backoff.succeeded()
    this.connectionEvent('connected')
    // NOTIFYs sent while LISTEN was down are gone: look at the heads now rather than at the next tick.
    void this.#poll(true)
  }

  protected async release(): Promise<void> {
    for (const timer of [this.#pollTimer, this.#heartbeatTimer]) if (timer !== undefined) clearTimeout(timer)
    this.#backoff.cancel()
    // What was accepted is sent before the pool goes.
    await this.#flushing
    const listener = this.#listener
    this.#listener = undefined
    if (listener !== undefined) {
      this.#dead.add(listener)
      await listener.end().catch(() => undefined)
    }
    await this.#pool.end().catch(() => undefined)
  }
}

/**
 * The {@link Bus} on a Redis stream (`ioredis`), for write or presence rates beyond what
 * NOTIFY suits. Postgres stays the truth for data: the stream carries hints, topic messages
 * and events only, for a bounded while.
 *
 * ## One stream, one writer connection per relay
 * Every message is one `XADD <prefix>bus MAXLEN ~ maxLen * n <node> m <packet>` on the
 * relay's publishing connection. Redis runs one connection's commands in order and a stream
 * keeps entries in the order they were added, so one relay's messages are read everywhere in
 * publish order, across hints, topics and events. `MAXLEN ~` keeps the stream's memory
 * bounded: at most about `maxLen` entries of at most `maxMessageBytes` each.
 *
 * ## Reading: XREAD on a connection of its own
 * A blocking read holds its connection, so the reader has its own. It starts after the last
 * entry that existed at open (the past is in the store) and carries on from the last id it
 * read — also after a reconnect, so what was added while it was away still arrives, unless
 * the stream was trimmed past it. The reader numbers entries as Redis does (`entries-added`,
 * Redis 7); whenever a trim could have passed it (a full read, a reconnect) it reads again
 * with `XREAD` and `XINFO STREAM` in one MULTI, and entries trimmed before the next one it
 * expected are signalled as `overrun` before what follows them is delivered — whether the
 * reader was away or only slow. A read that takes longer than `blockMs` plus
 * `timeoutMarginMs` means a dead connection.
 *
 * ## Reconnecting
 * Both connections are replaced together, by the bus itself (ioredis's own reconnect is off,
 * so no command is ever re-sent behind the bus's back and duplicated): `disconnected`,
 * retries with exponential backoff and jitter, then `reconnected`. A publish in flight when
 * the connection drops rejects with `BusError` (it may or may not have been added).
 */
import { randomBytes } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import { BusBase, BusError, decodeBusPacket, encodeBusPacket, type BusBaseOptions, type BusItem } from '@outpost/core'
import { ReconnectBackoff } from './reconnect-backoff'

/** Options of {@link RedisBus.open}. */
export interface RedisBusOptions extends BusBaseOptions {
  /** A `redis://` or `rediss://` URL. */
  readonly url: string
  /** Prefix of the bus's key (default `outpost:`); the stream is `<prefix>bus`. Relays that share a store share a prefix. */
  readonly keyPrefix?: string
  /** Entries the stream keeps, about (default 10,000): a relay further behind than this signals `overrun`. */
  readonly maxLen?: number
  /** How long one XREAD blocks, ms (default 5,000). */
  readonly blockMs?: number
  /** How much longer than `blockMs` a read (or any command) may take before the connection counts as dead, ms (default 5,000). */
  readonly timeoutMarginMs?: number
  /** First reconnect delay, ms (default 100); it doubles per failed attempt up to `reconnectMaxMs` (default 5,000). */
  readonly reconnectMinMs?: number
  readonly reconnectMaxMs?: number
  /** How long one connection attempt may take, ms (default 5,000). */
  readonly connectTimeoutMs?: number
  /** Randomness for the reconnect jitter (default `Math.random`). */
  readonly random?: () => number
  /** More ioredis options (TLS, username, …); the bus sets its own reconnect, queue and timeout options. */
  readonly redisOptions?: RedisOptions
}

/** Entries one read takes at most. */
const READ_COUNT = 512

interface Connections {
  readonly pub: Redis
  readonly reader: Redis
}

type StreamReply = [Buffer, [Buffer, Buffer[]][]][] | null

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** `a > b` for stream ids (`ms-seq`). */
function idAfter(a: string, b: string): boolean {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt)
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt)
  return am > bm || (am === bm && as > bs)
}

/** The fields of an `XINFO STREAM` reply that the reader needs. */
function streamInfo(reply: unknown): { lastId: string; added: number | undefined; length: number } {
  const fields = new Map<string, unknown>()
  const list = reply as unknown[]
  for (let i = 0; i + 1 < list.length; i += 2) fields.set(String(list[i]), list[i + 1])
  const added = fields.get('entries-added')
  return { lastId: String(fields.get('last-generated-id') ?? '0-0'), added: added === undefined ? undefined : Number(added), length: Number(fields.get('length') ?? 0) }
}

/** The Redis Streams bus; see the module comment. Open it with {@link RedisBus.open}. */
export class RedisBus extends BusBase {
  /** Always `'redis'`. */
  readonly name = 'redis'
  /** The stream's key. */
  readonly key: string
  /** The client name of this instance's connections (find them in `CLIENT LIST`). */
  readonly clientName: string
  readonly #options: RedisBusOptions
  readonly #backoff: ReconnectBackoff
  readonly #maxPacketBytes: number
  #connections: Connections | undefined
  #lastId = '0-0'
  /** Entries read so far, numbered as Redis's `entries-added` numbers them. */
  #ordinal = 0
  /** The next read must be a checked one (MULTI with XINFO): after a reconnect, or while catching up. */
  #check = false

  private constructor(options: RedisBusOptions) {
    super(randomBytes(8).toString('hex'), options)
    this.#options = options
    this.key = `${options.keyPrefix ?? 'outpost:'}bus`
    this.clientName = `outpost-bus-${this.node}`
    this.#backoff = new ReconnectBackoff({ minMs: options.reconnectMinMs, maxMs: options.reconnectMaxMs, random: options.random })
    this.#maxPacketBytes = this.limits.maxMessageBytes + 1024
  }

  /** Connects, starts reading after the stream's current end, and returns the connected bus. */
  static async open(options: RedisBusOptions): Promise<RedisBus> {
    const bus = new RedisBus(options)
    try {
      const connections = await bus.#connect()
      const info = await bus.#info(connections)
      bus.#lastId = info.lastId
      bus.#ordinal = info.added ?? 0
      bus.#connections = connections
      bus.connectionEvent('connected')
      void bus.#readLoop(connections)
    } catch (error) {
      await bus.close().catch(() => undefined)
      throw new BusError(`Cannot open the Redis bus (${options.url.replace(/\/\/([^@/]*)@/, '//***@')}): ${message(error)}`, undefined, { cause: error })
    }
    return bus
  }

  async #connect(): Promise<Connections> {
    const margin = this.#options.timeoutMarginMs ?? 5_000
    const options = (role: string): RedisOptions => ({
      ...this.#options.redisOptions,
      lazyConnect: true,
      connectionName: `${this.clientName}-${role}`,
      connectTimeout: this.#options.connectTimeoutMs ?? 5_000,
      // The bus reconnects both connections itself; ioredis must neither retry nor queue nor re-send.
      retryStrategy: () => null,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: (this.#options.blockMs ?? 5_000) + margin,
      keepAlive: 10_000,
    })
    const pub = new Redis(this.#options.url, options('pub'))
    const reader = new Redis(this.#options.url, options('read'))
    const connections: Connections = { pub, reader }
    for (const client of [pub, reader]) {
      client.on('error', (error: unknown) => this.noteError(error))
      client.on('end', () => this.#lost(connections))
    }
    try {
      await Promise.all([pub.connect(), reader.connect()])
    } catch (error) {
      pub.disconnect()
      reader.disconnect()
      throw error
    }
    return connections
  }

  async #info(connections: Connections): Promise<{ lastId: string; added: number | undefined; length: number }> {
    try {
      return streamInfo(await connections.pub.call('XINFO', 'STREAM', this.key))
    } catch (error) {
      if (/no such key/i.test(message(error))) return { lastId: '0-0', added: 0, length: 0 }
      throw error
    }
  }

  // ───────────────────────────── sending ─────────────────────────────

  protected async transmit(_item: BusItem, bytes: Uint8Array): Promise<void> {
    const connections = this.#connections
    if (connections === undefined) throw new BusError('The Redis bus is not connected; nothing was sent')
    const packet = encodeBusPacket(this.node, [bytes])
    try {
      await connections.pub.xadd(this.key, 'MAXLEN', '~', String(this.#options.maxLen ?? 10_000), '*', 'n', this.node, 'm', Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength))
    } catch (error) {
      throw new BusError(`Could not publish on the Redis bus: ${message(error)}. Other relays catch up from the store`, undefined, { cause: error })
    }
  }

  // ───────────────────────────── receiving ─────────────────────────────

  /**
   * Reads in order, numbering every entry exactly. A plain blocking read that returns fewer
   * than `count` entries (`count` ≤ `maxLen`) proves nothing after `lastId` was trimmed: a
   * trim past it would have left at least `maxLen` entries after it. A full read may hide a
   * trim, so it is dropped and read again with `XREAD` and `XINFO STREAM` in one MULTI — one
   * snapshot, in which the first entry is number `max(ordinal + 1, firstRetained)` — until the
   * reader has caught up. The first read after a reconnect is such a checked read too.
   */
  async #readLoop(connections: Connections): Promise<void> {
    const block = this.#options.blockMs ?? 5_000
    const count = Math.max(1, Math.min(READ_COUNT, this.#options.maxLen ?? 10_000))
    while (this.#connections === connections && this.state !== 'closed') {
      try {
        let entries: [Buffer, Buffer[]][]
        if (this.#check) {
          const replies = (await connections.reader.multi().xreadBuffer('COUNT', count, 'STREAMS', this.key, this.#lastId).xinfo('STREAM', this.key).exec()) ?? []
          const [[readError, reply] = [], [infoError, info] = []] = replies
          if (readError) throw readError
          if (infoError && !/no such key/i.test(message(infoError))) throw infoError
          entries = (reply as StreamReply)?.[0]?.[1] ?? []
          if (this.#connections !== connections) return
          if (entries.length > 0 && !infoError) this.#account(streamInfo(info), entries.length)
          this.#check = entries.length === count
        } else {
          entries = ((await connections.reader.xreadBuffer('COUNT', count, 'BLOCK', block, 'STREAMS', this.key, this.#lastId)) as StreamReply)?.[0]?.[1] ?? []
          if (this.#connections !== connections) return
          if (entries.length === count) {
            this.#check = true
            continue
          }
          this.#ordinal += entries.length
        }
        for (const [id, fields] of entries) {
          this.#lastId = id.toString()
          this.#receive(fields)
        }
      } catch (error) {
        this.#lost(connections, error)
        return
      }
    }
  }

  /** Numbers a batch of `count` entries read with `info`, signalling `overrun` for entries trimmed before it. */
  #account(info: { added: number | undefined; length: number }, count: number): void {
    if (info.added === undefined) return // Redis before 7 does not number entries: no overrun detection.
    const firstRetained = info.added - info.length + 1
    if (info.added < this.#ordinal + count) {
      // More entries read than were ever added: the stream was recreated (Redis restarted without its data, or the key was deleted).
      this.signal({ type: 'overrun', reason: 'the bus stream was recreated; messages added before that may be lost' })
      this.#ordinal = firstRetained + count - 1
      return
    }
    const first = Math.max(this.#ordinal + 1, firstRetained)
    if (first > this.#ordinal + 1) {
      this.signal({ type: 'overrun', reason: `${first - this.#ordinal - 1} bus messages were trimmed from the stream before this relay read them (maxLen ${this.#options.maxLen ?? 10_000})` })
    }
    this.#ordinal = first + count - 1
  }

  #receive(fields: Buffer[]): void {
    let node: string | undefined
    let body: Buffer | undefined
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = fields[i]?.toString()
      if (name === 'n') node = fields[i + 1]?.toString()
      else if (name === 'm') body = fields[i + 1]
    }
    if (node === this.node) return
    try {
      if (body === undefined) throw new Error('an entry without a packet')
      const packet = decodeBusPacket(body, this.#maxPacketBytes)
      this.deliver(packet.node, packet.items)
    } catch (error) {
      this.signal({ type: 'overrun', reason: `a bus message could not be read and is lost: ${message(error)}` })
    }
  }

  // ───────────────────────────── connection ─────────────────────────────

  #lost(connections: Connections, error?: unknown): void {
    if (this.#connections !== connections) return
    this.#connections = undefined
    connections.pub.disconnect()
    connections.reader.disconnect()
    if (this.state === 'closed') return
    this.connectionEvent('lost', error === undefined ? 'the Redis connection ended' : `the Redis connection failed: ${message(error)}`)
    this.#scheduleReconnect()
  }

  #scheduleReconnect(): void {
    if (this.state !== 'closed') this.#backoff.schedule(() => void this.#reconnect())
  }

  async #reconnect(): Promise<void> {
    let connections: Connections
    try {
      connections = await this.#connect()
    } catch (error) {
      this.noteError(error)
      this.#scheduleReconnect()
      return
    }
    if (this.state === 'closed' || connections.pub.status !== 'ready' || connections.reader.status !== 'ready') {
      connections.pub.disconnect()
      connections.reader.disconnect()
      this.#scheduleReconnect()
      return
    }
    this.#connections = connections
    this.#backoff.succeeded()
    this.#check = true
    this.connectionEvent('connected')
    void this.#readLoop(connections)
  }

  protected async release(): Promise<void> {
    this.#backoff.cancel()
    const connections = this.#connections
    this.#connections = undefined
    if (connections === undefined) return
    // QUIT answers after every command sent before it: what was accepted is added first.
    await connections.pub.quit().catch(() => connections.pub.disconnect())
    connections.reader.disconnect()
  }
}

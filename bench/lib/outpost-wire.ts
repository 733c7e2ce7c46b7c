/**
 * A minimal Node client of Outpost's wire protocol (core's codec and messages over `ws`):
 * hello → welcome, ops → ack, subscribe → changes. The harness uses it to seed the relay,
 * to change records "on the server" while a browser is offline, and to load the relay.
 */
import WebSocket from 'ws'
import { Hlc, PROTOCOL_VERSIONS, decodeServerMessage, encodeMessage, lwwSetState, type Change, type ReplicaId, type ServerMessage, type Shape } from '@outpost/core'
import type { BenchRecord } from './data'

/** Records per `ops` frame: well under the relay's 1 MiB default frame limit. */
export const RECORDS_PER_FRAME = 2000

/** Options of {@link WireClient.connect}. */
export interface WireClientOptions {
  /** Wire versions offered in hello (default: every version this build speaks). */
  readonly versions?: readonly number[]
  /** Offer permessage-deflate (the relay uses it when configured to). Default false. */
  readonly perMessageDeflate?: boolean
}

/** A connected protocol client. */
export class WireClient {
  readonly #socket: WebSocket
  readonly #hlc: Hlc
  /** The wire version the relay chose (1 until welcome). */
  version = 1
  #nextId = 1
  readonly #acks = new Map<number, () => void>()
  readonly #listeners = new Set<(message: ServerMessage) => void>()

  private constructor(socket: WebSocket, hlc: Hlc) {
    this.#socket = socket
    this.#hlc = hlc
    socket.on('message', (data: Buffer) => {
      const message = decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), { maxFrameBytes: 64 * 1024 * 1024, maxElements: 50_000_000 }, this.version)
      if (message.type === 'welcome') this.version = message.version
      if (message.type === 'ack') {
        this.#acks.get(message.id)?.()
        this.#acks.delete(message.id)
      }
      for (const listener of this.#listeners) listener(message)
    })
  }

  /** Connects to `url` and completes the hello/welcome handshake. */
  static async connect(url: string, replicaId: string, options: WireClientOptions = {}): Promise<WireClient> {
    const socket = new WebSocket(url, { perMessageDeflate: options.perMessageDeflate ?? false })
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    const client = new WireClient(socket, new Hlc({ replicaId: replicaId as ReplicaId }))
    const welcome = client.next((m) => m.type === 'welcome' || m.type === 'error')
    client.send({ type: 'hello', versions: [...(options.versions ?? PROTOCOL_VERSIONS)], replicaId: replicaId as ReplicaId, clientTime: Date.now() })
    const answer = await welcome
    if (answer.type !== 'welcome') throw new Error(`relay refused hello: ${JSON.stringify(answer)}`)
    return client
  }

  /** Sends one protocol message. */
  send(message: Parameters<typeof encodeMessage>[0]): void {
    this.#socket.send(encodeMessage(message, this.version))
  }

  /** Resolves with the next message matching `match`. */
  next(match: (message: ServerMessage) => boolean): Promise<ServerMessage> {
    return new Promise((resolve) => {
      const listener = (message: ServerMessage): void => {
        if (!match(message)) return
        this.#listeners.delete(listener)
        resolve(message)
      }
      this.#listeners.add(listener)
    })
  }

  /** Calls `listener` with every message; returns the remover. */
  onMessage(listener: (message: ServerMessage) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** The `set` change of one record, stamped by this client's clock. */
  change(map: string, record: BenchRecord): Change {
    const deleted = this.#hlc.tick()
    const fields = this.#hlc.tick()
    return { kind: 'lww', map, key: record.id, state: lwwSetState(record as unknown as Parameters<typeof lwwSetState>[0], deleted, fields) }
  }

  /** Sends `changes` as one `ops` frame and resolves on its ack. */
  ops(changes: Change[]): Promise<void> {
    const id = this.#nextId++
    const acked = new Promise<void>((resolve) => this.#acks.set(id, resolve))
    this.send({ type: 'ops', id, changes })
    return acked
  }

  /** Writes `records` to `map` in frames of {@link RECORDS_PER_FRAME}, each acked before the next. */
  async write(map: string, records: readonly BenchRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += RECORDS_PER_FRAME) {
      await this.ops(records.slice(i, i + RECORDS_PER_FRAME).map((r) => this.change(map, r)))
    }
  }

  /** Subscribes to `shape` and resolves once the relay says the initial round is synced. */
  async subscribe(sub: number, shape: Shape): Promise<void> {
    const synced = this.next((m) => (m.type === 'synced' || m.type === 'error') && (m as { sub?: number }).sub === sub)
    this.send({ type: 'subscribe', sub, shape })
    const answer = await synced
    if (answer.type !== 'synced') throw new Error(`subscribe failed: ${JSON.stringify(answer)}`)
  }

  /** Closes the socket. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.readyState === WebSocket.CLOSED) return resolve()
      this.#socket.once('close', () => resolve())
      this.#socket.close()
    })
  }
}

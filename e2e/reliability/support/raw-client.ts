/**
 * A light protocol client: one `ws` socket speaking core's codec (hello, ops, subscribe),
 * without IndexedDB, an engine or live queries. L1 runs hundreds of them in one process
 * (an in-page engine each would be far too heavy), and N1 uses one to read a map exactly
 * as the relay serves it, from empty.
 */
import {
  PROTOCOL_VERSIONS,
  decodeServerMessage,
  encodeMessage,
  type Change,
  type ClientMessage,
  type ReplicaId,
  type SerializedError,
  type ServerMessage,
} from '@outpost/core'
import { WebSocket } from 'ws'

/** An `ops` batch's outcome: one result per change (null = committed). */
export interface OpsOutcome {
  readonly results: readonly (SerializedError | null)[]
}

/** A connected raw client. */
export class RawClient {
  readonly replicaId: ReplicaId
  #ws: WebSocket
  #version = 1
  #nextId = 1
  #nextSub = 1
  readonly #acks = new Map<number, { resolve: (outcome: OpsOutcome) => void; reject: (error: Error) => void }>()
  readonly #listeners = new Set<(message: ServerMessage) => void>()
  #closed: Error | undefined

  private constructor(ws: WebSocket, replicaId: ReplicaId) {
    this.#ws = ws
    this.replicaId = replicaId
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data: Buffer) => {
      const message = decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.length), { maxFrameBytes: 64 * 1024 * 1024 }, this.#version)
      if (message.type === 'welcome') this.#version = message.version
      if (message.type === 'ack') {
        const waiter = this.#acks.get(message.id)
        this.#acks.delete(message.id)
        waiter?.resolve({ results: message.results })
      } else if (message.type === 'error' && message.ref !== undefined) {
        const waiter = this.#acks.get(message.ref)
        this.#acks.delete(message.ref)
        waiter?.reject(new Error(`ops ${message.ref} refused: ${message.error.code} ${message.error.message}`))
      }
      for (const listener of this.#listeners) listener(message)
    })
    ws.on('close', (code, reason) => {
      this.#closed = new Error(`socket closed (${code} ${reason.toString()})`)
      for (const waiter of this.#acks.values()) waiter.reject(this.#closed)
      this.#acks.clear()
    })
    ws.on('error', () => {
      // The close event carries what callers need.
    })
  }

  /** Opens a socket to `url`, sends hello and waits for welcome. */
  static async connect(url: string, replicaId: string, timeoutMs = 30_000): Promise<RawClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    const client = new RawClient(ws, replicaId as ReplicaId)
    const welcome = client.#wait((m) => m.type === 'welcome' || m.type === 'error', timeoutMs)
    client.send({ type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId: client.replicaId, clientTime: Date.now() })
    const reply = await welcome
    if (reply.type !== 'welcome') throw new Error(`hello refused: ${JSON.stringify(reply)}`)
    return client
  }

  /** Sends one message. */
  send(message: ClientMessage): void {
    this.#ws.send(encodeMessage(message, this.#version))
  }

  /** Sends an ops batch; resolves with its ack (rejects on an error frame or a closed socket). */
  ops(changes: Change[]): Promise<OpsOutcome> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    const id = this.#nextId++
    const acked = new Promise<OpsOutcome>((resolve, reject) => this.#acks.set(id, { resolve, reject }))
    this.send({ type: 'ops', id, changes })
    return acked
  }

  /**
   * Reads a whole map as the relay holds it: subscribes to `{ map }` with no root (so the
   * relay streams every record, tombstones included), collects until `synced`, unsubscribes.
   */
  async readMap(map: string, timeoutMs = 30_000): Promise<Map<string, Change>> {
    const sub = this.#nextSub++
    const records = new Map<string, Change>()
    const done = this.#wait((m) => {
      if (!('sub' in m) || m.sub !== sub) return false
      if (m.type === 'changes') for (const change of m.changes) records.set(change.key, change)
      return m.type === 'synced' || m.type === 'error'
    }, timeoutMs)
    this.send({ type: 'subscribe', sub, shape: { map } })
    const last = await done
    if (last.type === 'error') throw new Error(`reading ${map} failed: ${JSON.stringify(last.error)}`)
    this.send({ type: 'unsubscribe', sub })
    return records
  }

  #wait(accept: (message: ServerMessage) => boolean, timeoutMs: number): Promise<ServerMessage> {
    return new Promise<ServerMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener)
        reject(new Error(`timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      const listener = (message: ServerMessage): void => {
        if (!accept(message)) return
        clearTimeout(timer)
        this.#listeners.delete(listener)
        resolve(message)
      }
      this.#listeners.add(listener)
    })
  }

  /** Closes the socket. */
  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return
    const closed = new Promise<void>((resolve) => this.#ws.once('close', () => resolve()))
    this.#ws.close()
    await closed
  }
}

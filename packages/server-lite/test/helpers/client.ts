/**
 * A minimal protocol client for tests: a real `ws` socket speaking core's codec, a log of
 * every server message, and waits on it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  Hlc,
  PROTOCOL_VERSIONS,
  decodeServerMessage,
  encode,
  encodeMessage,
  type AckMessage,
  type Change,
  type ClientMessage,
  type ReplicaId,
  type ServerMessage,
  type WelcomeMessage,
} from '@outpost/core'
import { WebSocket } from 'ws'
import { createRelay, type Relay, type RelayConfigInput, type RelayOptions } from '../../src/index'

/** A temporary directory removed by the returned cleanup. */
export function tempDir(prefix = 'outpost-relay-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** Starts a relay on 127.0.0.1:0 over a fresh data dir, silent logs. */
export async function startRelay(config: RelayConfigInput = {}, options: RelayOptions = {}): Promise<{ relay: Relay; stop: () => Promise<void>; dataDir: string }> {
  const dir = tempDir()
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent', ...config }, options)
  return {
    relay,
    dataDir: dir.path,
    stop: async () => {
      await relay.close()
      dir.remove()
    },
  }
}

/** Options of {@link TestClient.connect}. */
export interface ConnectOptions {
  readonly token?: string
  readonly replicaId?: string
  readonly versions?: number[]
  readonly lastSyncAt?: number
  readonly now?: () => number
  /** Flow-control window announced in hello (bytes of paced frames held unprocessed). */
  readonly window?: number
  /** Offer permessage-deflate, as browsers do (the `ws` default: true). */
  readonly perMessageDeflate?: boolean
  /** Schema versions announced in hello (`createClient({ schemas })` does this). */
  readonly schemas?: Record<string, number>
}

let replicaCounter = 0

/** A test client; see the module comment. */
export class TestClient {
  readonly ws: WebSocket
  readonly messages: ServerMessage[] = []
  readonly clock: Hlc
  readonly replicaId: string
  /** Bytes of every frame received, and each frame's size in arrival order (parallel to `messages`). */
  bytesReceived = 0
  readonly frameSizes: number[] = []
  /** The wire version `welcome` chose (1 before it): frames are read strictly in it and written in it. */
  version = 1
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>
  #waiters: (() => void)[] = []
  #nextId = 1

  private constructor(ws: WebSocket, replicaId: string, now: () => number) {
    this.ws = ws
    this.replicaId = replicaId
    this.clock = new Hlc({ replicaId: replicaId as ReplicaId, now })
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data: Buffer) => {
      this.bytesReceived += data.length
      const frame = new Uint8Array(data.buffer, data.byteOffset, data.length)
      const message = decodeServerMessage(frame, { maxFrameBytes: 64 * 1024 * 1024 }, this.version)
      if (message.type === 'welcome') this.version = message.version
      this.messages.push(message)
      this.frameSizes.push(data.length)
      for (const wake of this.#waiters.splice(0)) wake()
    })
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() })
        for (const wake of this.#waiters.splice(0)) wake()
      })
    })
    ws.on('error', () => {
      // The close event reports what a test needs; errors (e.g. 1009) are expected in some tests.
    })
  }

  /** Opens a socket without sending hello. */
  static async open(url: string, options: ConnectOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { perMessageDeflate: options.perMessageDeflate ?? true })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return new TestClient(ws, options.replicaId ?? `r${process.pid}x${++replicaCounter}`, options.now ?? Date.now)
  }

  /** Opens a socket and completes hello; returns the client and the welcome. */
  static async connect(url: string, options: ConnectOptions = {}): Promise<{ client: TestClient; welcome: WelcomeMessage }> {
    const client = await TestClient.open(url, options)
    client.hello(options)
    const reply = await client.next((m) => m.type === 'welcome' || m.type === 'error')
    if (reply.type !== 'welcome') throw new Error(`hello failed: ${JSON.stringify(reply)}`)
    return { client, welcome: reply }
  }

  /** Sends hello. */
  hello(options: ConnectOptions = {}): void {
    this.send({
      type: 'hello',
      versions: options.versions ?? [...PROTOCOL_VERSIONS],
      replicaId: this.replicaId as ReplicaId,
      clientTime: Date.now(),
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.lastSyncAt === undefined ? {} : { lastSyncAt: options.lastSyncAt }),
      ...(options.window === undefined ? {} : { window: options.window }),
      ...(options.schemas === undefined ? {} : { schemas: options.schemas }),
    })
  }

  /** Sends a client message. */
  send(message: ClientMessage): void {
    this.ws.send(encodeMessage(message, this.version))
  }

  /** Sends raw bytes (or any value, encoded). */
  sendRaw(data: Uint8Array | unknown): void {
    this.ws.send(data instanceof Uint8Array ? data : encode(data))
  }

  #cursor = 0

  /** Moves the `next` cursor past every message received so far. */
  skipAll(): void {
    this.#cursor = this.messages.length
  }

  /** The next message (after the last one returned) matching `predicate`; rejects after `timeoutMs`. */
  async next<T extends ServerMessage = ServerMessage>(predicate: (m: ServerMessage) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      while (this.#cursor < this.messages.length) {
        const message = this.messages[this.#cursor++] as ServerMessage
        if (predicate(message)) return message as T
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting; got ${JSON.stringify(this.messages.slice(-3)).slice(0, 500)}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for a message; last: ${JSON.stringify(this.messages.slice(-3)).slice(0, 500)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Every message received so far that matches. */
  all<T extends ServerMessage>(predicate: (m: ServerMessage) => boolean): T[] {
    return this.messages.filter(predicate) as T[]
  }

  /** Sends an ops batch and waits for its ack (or an error referencing it). */
  async ops(changes: Change[]): Promise<AckMessage> {
    const id = this.#nextId++
    this.send({ type: 'ops', id, changes })
    const reply = await this.waitAny((m) => (m.type === 'ack' && m.id === id) || (m.type === 'error' && m.ref === id))
    if (reply.type !== 'ack') throw new Error(`ops ${id} failed: ${JSON.stringify(reply)}`)
    return reply
  }

  /** Waits for a message matching `predicate` anywhere in the log (not just after the cursor). */
  async waitAny(predicate: (m: ServerMessage) => boolean, timeoutMs = 10_000): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.messages.find(predicate)
      if (found !== undefined) return found
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('socket closed while waiting')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out; last: ${JSON.stringify(this.messages.slice(-3)).slice(0, 500)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Closes the socket and waits for it to be closed. */
  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close()
    await this.closed
  }
}

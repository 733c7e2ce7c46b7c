/**
 * A flooding client process for S6: one WebSocket per token, each sending `ops` frames of
 * 2,000 changes as fast as its socket takes them, never waiting for
 * acks, ignoring RATE_LIMITED and reconnecting when closed, for `durationMs`. It runs as
 * its own process so its CPU does not distort the honest latencies measured by the test.
 *
 * Run: `node --conditions=@outpost/source --import tsx flooder.ts` with the JSON
 * {@link FloodPlan} on stdin; prints one JSON {@link FloodTally} line when done.
 */
import { Hlc, PROTOCOL_VERSIONS, decodeServerMessage, encodeMessage, lwwUpdateState, type ReplicaId } from '@outpost/core'
import { WebSocket } from 'ws'

/** What the flooder is told to do. */
export interface FloodPlan {
  readonly url: string
  /** One token per flooding connection (distinct subjects, or several of one). */
  readonly tokens: readonly string[]
  readonly durationMs: number
  readonly seed: number
}

/** What the flooding connections saw, summed. */
export interface FloodTally {
  frames: number
  changesPerFrame: number
  bytes: number
  /** Changes the relay committed (ack result null). */
  acked: number
  /** Batches refused with RATE_LIMITED. */
  rateLimited: number
  /** Batches the relay answered at all (ack or error); the rest were still unread or queued when the flood stopped. */
  answered: number
  retryAfterSeen: boolean
  /** Milliseconds a flooder waited because the relay stopped reading (its socket buffer stayed over 2 MiB). */
  pausedMs: number
  connections: number
  closes: Record<number, number>
}

/** Changes per flooding frame (about 100 KB). */
const CHANGES_PER_FRAME = 2_000
const MIB = 2 ** 20

async function lane(plan: FloodPlan, token: string, index: number, tally: FloodTally, stopAt: number): Promise<void> {
  const replicaId = `flooder-${plan.seed}-${index}` as ReplicaId
  const clock = new Hlc({ replicaId })
  let n = 0
  const frame = (): Uint8Array => {
    const changes = Array.from({ length: CHANGES_PER_FRAME }, () => ({ kind: 'lww' as const, map: 'flood', key: `f${index}-${n++ % 1000}`, state: lwwUpdateState({ n, pad: 'x'.repeat(32) }, clock.tick()) }))
    return encodeMessage({ type: 'ops', id: n, changes })
  }
  while (Date.now() < stopAt) {
    // No permessage-deflate: compressing would throttle the flooder itself.
    const ws = new WebSocket(plan.url, { perMessageDeflate: false })
    tally.connections++
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
    ws.on('error', () => undefined)
    ws.on('message', (data: Buffer) => {
      const message = decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.length))
      if (message.type === 'ack') tally.acked += message.results.filter((r) => r === null).length
      if (message.type === 'ack' || (message.type === 'error' && message.ref !== undefined)) tally.answered++
      if (message.type === 'error' && message.error.code === 'RATE_LIMITED') {
        tally.rateLimited++
        if (typeof message.error.details?.['retryAfterMs'] === 'number') tally.retryAfterSeen = true
      }
    })
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true))
      ws.once('error', () => resolve(false))
    })
    if (opened) {
      ws.send(encodeMessage({ type: 'hello', versions: [...PROTOCOL_VERSIONS], token, replicaId, clientTime: Date.now() }))
      while (Date.now() < stopAt && ws.readyState === WebSocket.OPEN) {
        if (ws.bufferedAmount < 2 * MIB) {
          const bytes = frame()
          ws.send(bytes)
          tally.frames++
          tally.bytes += bytes.length
          if (tally.frames % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
        } else {
          // The relay stopped reading this socket (flow control): wait as a real client's buffer would.
          const began = Date.now()
          await new Promise((resolve) => setTimeout(resolve, 5))
          tally.pausedMs += Date.now() - began
        }
      }
    } else {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate()
    const code = await closed
    tally.closes[code] = (tally.closes[code] ?? 0) + 1
  }
}

async function main(): Promise<void> {
  let input = ''
  for await (const chunk of process.stdin) input += String(chunk)
  const plan = JSON.parse(input) as FloodPlan
  const tally: FloodTally = { changesPerFrame: CHANGES_PER_FRAME, frames: 0, bytes: 0, acked: 0, rateLimited: 0, answered: 0, retryAfterSeen: false, pausedMs: 0, connections: 0, closes: {} }
  const stopAt = Date.now() + plan.durationMs
  await Promise.all(plan.tokens.map((token, i) => lane(plan, token, i, tally, stopAt)))
  process.stdout.write(`${JSON.stringify(tally)}\n`)
}

// A script, not a library: the test imports only its types (`import type`), which runs nothing.
main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)

/**
 * Fairness under load, with the relay as a child process at its default limits and auth
 * on (so the flooder and the honest user are different subjects):
 *
 * - two connections of one subject flood `ops` frames of 2,000 changes as fast as their
 *   sockets take them, never waiting for acks and ignoring RATE_LIMITED (reconnecting
 *   when closed);
 * - meanwhile an honest client of another subject writes one change every 25 ms.
 *
 * Asserted: every honest write is acknowledged as committed; the flooder is refused with
 * RATE_LIMITED and a `retryAfterMs`, or held back in its own socket; the relay's resident memory grows by less than
 * {@link RSS_BOUND_MB} during the flood (before: 400+ MB in 8 s and climbing, because
 * every frame received was queued, and the honest p50 was over 1 s); the relay stays healthy. Latencies are printed, never asserted.
 * The reliability suite measures the full scenario (S6); this is the short guard.
 */
import type { Socket } from 'node:net'
import { Hlc, PROTOCOL_VERSIONS, decodeServerMessage, encodeMessage, type ReplicaId } from '@outpost/core'
import { WebSocket } from 'ws'
import { afterEach, describe, expect, it } from 'vitest'
import { update } from './helpers/changes'
import { TestClient, startRelay, tempDir } from './helpers/client'
import { readMetrics, spawnRelay } from './helpers/relay-process'
import { AUDIENCE, ISSUER, SECRET, token } from './helpers/tokens'

const MB = 1024 * 1024
/**
 * Bound on the relay's RSS growth while flooded. Measured on a 2-core machine: 150–240 MB
 * with the limits, most of it garbage V8 has not collected yet (a forced GC after the flood
 * leaves about 20 MB of heap: the relay keeps no records in memory); 400+ MB in 8 s and
 * climbing without them (the issue measured 1.3 GB). The bound is on growth, which the
 * per-connection queue budget and the transaction cap keep flat however long the flood.
 */
const RSS_BOUND_MB = 320
/** How long the flood lasts; `OUTPOST_FLOOD_MS` runs it longer (memory plateaus: 25 s measured the same peak as 8 s). */
const FLOOD_MS = Number(process.env.OUTPOST_FLOOD_MS ?? 8_000)
const FLOODERS = 2
const CHANGES_PER_FRAME = 2_000

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup()
})

/** What the flooding connections saw. */
interface FloodTally {
  frames: number
  bytes: number
  acked: number
  rateLimited: number
  /** Batches the relay answered (ack or error); the rest were still waiting, unread or queued, when the flood stopped. */
  answered: number
  retryAfterSeen: boolean
  closes: Map<number, number>
  connections: number
}

/** One flooding lane: connects as `replicaId`, sends frames while its socket takes them, reconnects when closed, until `stop()`. */
async function flood(url: string, jwt: string, replicaId: string, tally: FloodTally, stopped: () => boolean): Promise<void> {
  const clock = new Hlc({ replicaId: replicaId as ReplicaId })
  let n = 0
  const frame = (): Uint8Array => {
    const changes = Array.from({ length: CHANGES_PER_FRAME }, () => update(clock, 'flood', `k${n++ % 1000}`, { n, pad: 'x'.repeat(32) }))
    return encodeMessage({ type: 'ops', id: n, changes })
  }
  while (!stopped()) {
    // No permessage-deflate: compressing would throttle the flooder itself, and a flooder sends as fast as it can.
    const ws = new WebSocket(url, { perMessageDeflate: false })
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
      ws.send(encodeMessage({ type: 'hello', versions: [...PROTOCOL_VERSIONS], token: jwt, replicaId: replicaId as ReplicaId, clientTime: Date.now() }))
      while (!stopped() && ws.readyState === WebSocket.OPEN) {
        // As fast as the socket takes it: only the relay's reading (TCP back-pressure) slows this down.
        if (ws.bufferedAmount < 2 * MB) {
          const bytes = frame()
          ws.send(bytes)
          tally.frames++
          tally.bytes += bytes.length
        } else {
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
        if (tally.frames % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
    }
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate()
    const code = await closed
    tally.closes.set(code, (tally.closes.get(code) ?? 0) + 1)
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

describe('fairness under load', () => {
  it('bounds a flooding subject: honest writes are all acked and relay memory stays bounded', { timeout: 60_000 }, async () => {
    const dir = tempDir('outpost-flood-')
    cleanups.push(() => dir.remove())
    const relay = await spawnRelay(dir.path, { args: ['--jwt-secret', SECRET, '--jwt-issuer', ISSUER, '--jwt-audience', AUDIENCE] })
    cleanups.push(() => {
      if (relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill('SIGKILL')
    })
    const memory = async () => (await readMetrics(relay.httpUrl, ['process_resident_memory_bytes'])).process_resident_memory_bytes ?? 0
    const heap = async () => {
      const m = await readMetrics(relay.httpUrl, ['nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes'])
      return `heap ${((m.nodejs_heap_size_used_bytes ?? 0) / MB).toFixed(0)} MB, external ${((m.nodejs_external_memory_bytes ?? 0) / MB).toFixed(0)} MB`
    }

    const { client: honest } = await TestClient.connect(relay.url, { token: await token('honest-user') })
    let seq = 0
    const honestWrite = async (): Promise<number> => {
      const began = performance.now()
      const ack = await honest.ops([update(honest.clock, 'honest', `h${seq++ % 100}`, { seq })])
      expect(ack.results, `honest write ${seq}`).toEqual([null])
      return performance.now() - began
    }
    const baseline: number[] = []
    for (let i = 0; i < 40; i++) baseline.push(await honestWrite())
    honest.messages.length = 0
    honest.skipAll()
    const rssBefore = await memory()
    const heapBefore = await heap()

    const tally: FloodTally = { frames: 0, bytes: 0, acked: 0, rateLimited: 0, answered: 0, retryAfterSeen: false, closes: new Map(), connections: 0 }
    const floodToken = await token('flooder')
    let stop = false
    const began = Date.now()
    const lanes = Array.from({ length: FLOODERS }, (_, i) => flood(relay.url, floodToken, `flooder-${i}`, tally, () => stop))
    let rssMax = rssBefore
    const sampler = (async () => {
      while (!stop) {
        rssMax = Math.max(rssMax, await memory())
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    })()
    const underFlood: number[] = []
    try {
      while (Date.now() - began < FLOOD_MS) {
        underFlood.push(await honestWrite())
        // Keep the test client's log small: each ack was checked above.
        honest.messages.length = 0
        honest.skipAll()
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    } finally {
      stop = true
      await Promise.all([...lanes, sampler])
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const rssAfter = await memory()
    const heapAfter = await heap()

    const base = [...baseline].sort((a, b) => a - b)
    const flooded = [...underFlood].sort((a, b) => a - b)
    console.log(
      `flood: ${FLOODERS} connections of one subject sent ${tally.frames} frames (${(tally.bytes / MB).toFixed(0)} MB, ${tally.frames * CHANGES_PER_FRAME} changes) in ${FLOOD_MS} ms; ` +
        `${tally.acked} changes committed, ${tally.rateLimited} batches RATE_LIMITED, ${tally.frames - tally.answered} unanswered at the end, ${tally.connections} connections, closes ${JSON.stringify(Object.fromEntries(tally.closes))}; ` +
        `honest ack latency baseline p50 ${percentile(base, 50).toFixed(1)} / p99 ${percentile(base, 99).toFixed(1)} ms, ` +
        `under flood p50 ${percentile(flooded, 50).toFixed(1)} / p99 ${percentile(flooded, 99).toFixed(1)} ms (${flooded.length} writes); ` +
        `relay RSS ${(rssBefore / MB).toFixed(0)} MB -> max ${(rssMax / MB).toFixed(0)} MB during -> ${(rssAfter / MB).toFixed(0)} MB after (${heapBefore} before; ${heapAfter} after)`,
    )

    expect(underFlood.length, 'the honest client wrote during the flood').toBeGreaterThan(0)
    expect(tally.frames, 'the flooder did flood').toBeGreaterThan(50)
    // Refused (RATE_LIMITED) when the relay keeps up with more than the rate limit, held back
    // otherwise: batches neither acked nor refused when the flood stopped waited in the
    // flooder's socket (the relay stops reading past the connection's queue budget).
    expect(tally.rateLimited + (tally.frames - tally.answered), 'the flooder was refused or held back').toBeGreaterThan(0)
    if (tally.rateLimited > 0) expect(tally.retryAfterSeen, 'RATE_LIMITED says when to retry').toBe(true)
    expect(rssMax - rssBefore, 'relay RSS growth under flood').toBeLessThan(RSS_BOUND_MB * MB)
    expect(honest.ws.readyState).toBe(WebSocket.OPEN)
    expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(200)
    expect(relay.problems()).toEqual([])
    await honest.close()
  })
})

describe('slow consumers', () => {
  it('closes a subscriber that stops reading once more than maxBufferedBytesPerConnection waits for it (4009), and keeps serving the writer', { timeout: 60_000 }, async () => {
    const maxBufferedBytesPerConnection = 256 * 1024
    const { relay, stop } = await startRelay({ limits: { maxFrameBytes: 64 * 1024, maxBufferedBytesPerConnection, opsPerSecond: 1e6, opsBurst: 1e6, subjectOpsPerSecond: 1e6, subjectOpsBurst: 1e6 } })
    cleanups.push(() => void stop())
    // Uncompressed, so the fan-out fills the buffers by its own size (compression.test.ts covers a compressing slow reader).
    const { client: reader } = await TestClient.connect(relay.url, { perMessageDeflate: false })
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'feed' } })
    await reader.waitAny((m) => m.type === 'synced')
    const socket = (reader.ws as unknown as { _socket: Socket })._socket
    socket.pause()
    const { client: writer } = await TestClient.connect(relay.url)
    let written = 0
    // Fan-out to the reader piles up in the kernel's buffers, then in the relay's, until the limit.
    while (relay.sessionCount === 2 && written < 200 * MB) {
      const ack = await writer.ops(Array.from({ length: 40 }, (_, i) => update(writer.clock, 'feed', `r${i}`, { body: 'x'.repeat(1_000), n: written })))
      expect(ack.results.every((r) => r === null)).toBe(true)
      written += 40 * 1_000
    }
    console.log(`slow consumer: closed after ${(written / MB).toFixed(1)} MB of fan-out (limit ${maxBufferedBytesPerConnection / 1024} KiB in the relay, plus kernel buffers)`)
    expect(relay.sessionCount).toBe(1)
    socket.resume()
    const closed = await reader.closed
    expect(closed.code).toBe(4009)
    expect(closed.reason).toMatch(/consumer too slow/)
    expect((await writer.ops([update(writer.clock, 'feed', 'after', { ok: true })])).results).toEqual([null])
    await writer.close()
  })
})


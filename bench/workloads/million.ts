/**
 * Workload 7: a map of N = 1,000,000 records (quick: 100,000) held by the relay (its CLI,
 * its own process, on LMDB), on 127.0.0.1:
 * - relay RSS with the N records stored, idle (after start, one hello);
 * - a fresh Node protocol client subscribes to the whole map with flow control (window
 *   4 MiB, credit as it applies frames) and receives every record: time, records/s,
 *   bytes, the relay's peak RSS while streaming (sampled every 100 ms), and the client's
 *   peak heap (it keeps only a count, as a device that writes pages as they come would).
 * The records are planted straight into the relay's store (the seeding is not measured),
 * the same ~200 B records as every other workload.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { PROTOCOL_VERSIONS, decodeServerMessage, encodeMessage, lwwSetState, type ClientMessage, type LwwRecordState, type ReplicaId, type Stamp } from '@outpost/core'
import { LmdbStore } from '@outpost/server-lite'
import type { BenchContext } from '../lib/context'
import { makeRecord } from '../lib/data'
import type { ResultRow } from '../lib/results'
import { summarize } from '../lib/stats'
import { NODE_SOURCE_FLAGS } from '../../scripts/source-conditions'

const WINDOW = 4 * 1024 * 1024

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /VmRSS:\s+(\d+)/.exec(status)
  return match === null ? Number.NaN : Number(match[1])
}

/** Plants `n` records into the LMDB store at `dir` (as the relay stores them), in large transactions. */
async function plant(dir: string, n: number): Promise<void> {
  const store = LmdbStore.open({ path: dir })
  const stamp = (i: number): Stamp => `${(1_700_000_000_000 + i).toString(36).padStart(10, '0')}-0000-seed` as Stamp
  for (let i = 0; i < n; i += 20_000) {
    await store.applyWrites(
      Array.from({ length: Math.min(20_000, n - i) }, (_, j) => {
        const record = makeRecord(i + j)
        const state = lwwSetState(record as never, stamp(2 * (i + j)), stamp(2 * (i + j) + 1)) as LwwRecordState
        return { map: 'items', kind: 'lww' as const, key: record.id, decide: () => ({ state }) }
      }),
    )
  }
  await store.close()
}

async function startRelay(root: string, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...NODE_SOURCE_FLAGS, join(root, 'packages/server-lite/src/cli.ts'), '--port', '0', '--data-dir', dir, '--log-level', 'info'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const guard = (): void => void child.kill('SIGKILL')
  process.once('exit', guard)
  child.once('exit', () => process.off('exit', guard))
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the relay did not report a port in 60 s')), 60_000)
    child.once('exit', (code) => reject(new Error(`the relay exited with ${code}`)))
    lines.on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as { port?: unknown; msg?: unknown }
        if (parsed.msg === 'listening' && typeof parsed.port === 'number') {
          clearTimeout(timer)
          resolve(parsed.port)
        }
      } catch {
        // Not a JSON log line.
      }
    })
  })
  return { child, port }
}

/** Subscribes to the whole map with credit-based flow control; resolves with what arrived. */
async function stream(port: number): Promise<{ records: number; bytes: number; ms: number; peakHeapMiB: number }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('error', reject)
  })
  const send = (message: ClientMessage): void => socket.send(encodeMessage(message))
  let records = 0
  let bytes = 0
  let peakHeap = 0
  const started = performance.now()
  const done = new Promise<void>((resolve, reject) => {
    socket.on('message', (data: Buffer) => {
      bytes += data.length
      const message = decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.length))
      if (message.type === 'welcome') send({ type: 'subscribe', sub: 1, shape: { map: 'items' } })
      else if (message.type === 'changes') {
        records += message.changes.length
        if (message.paced === true) send({ type: 'credit', bytes: data.length })
        if (records % 100_000 < message.changes.length) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
      } else if (message.type === 'synced') resolve()
      else if (message.type === 'error') reject(new Error(JSON.stringify(message.error)))
    })
    socket.once('close', () => reject(new Error('the relay closed the connection')))
  })
  send({ type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId: 'bench-million' as ReplicaId, clientTime: Date.now(), window: WINDOW })
  await done
  const ms = performance.now() - started
  socket.removeAllListeners('close')
  socket.close()
  return { records, bytes, ms, peakHeapMiB: peakHeap / 1024 / 1024 }
}

/** Runs workload 7. */
export async function million(context: BenchContext): Promise<ResultRow[]> {
  const n = context.quick ? 100_000 : 1_000_000
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-million-'))
  try {
    context.log(`million: planting ${n} records`)
    const planted = performance.now()
    await plant(dir, n)
    context.log(`million: planted in ${((performance.now() - planted) / 1000).toFixed(1)} s; starting the relay`)
    const relay = await startRelay(context.root, dir)
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      const idle = await rssKiB(relay.child.pid as number)
      let peak = idle
      const sampler = setInterval(() => {
        void rssKiB(relay.child.pid as number).then((kib) => {
          peak = Math.max(peak, kib)
        }, () => undefined)
      }, 100)
      const result = await stream(relay.port)
      clearInterval(sampler)
      context.log(`million: ${result.records} records in ${(result.ms / 1000).toFixed(1)} s; relay RSS idle ${(idle / 1024).toFixed(0)} MiB, peak ${(peak / 1024).toFixed(0)} MiB`)
      const one = (value: number) => ({ outpost: summarize([value]) })
      const workload = `7. ${n.toLocaleString('en')} records stored`
      return [
        { workload, metric: 'relay RSS, records stored, idle', unit: 'MiB', lowerIsBetter: true, cells: one(idle / 1024) },
        { workload, metric: `initial sync of ${result.records.toLocaleString('en')} records to a Node client (flow control)`, unit: 'ms', lowerIsBetter: true, cells: one(result.ms) },
        { workload, metric: 'bytes on the wire', unit: 'MiB', lowerIsBetter: true, cells: one(result.bytes / 1024 / 1024) },
        { workload, metric: 'relay peak RSS while streaming', unit: 'MiB', lowerIsBetter: true, cells: one(peak / 1024) },
        { workload, metric: 'client peak heap while receiving', unit: 'MiB', lowerIsBetter: true, cells: one(result.peakHeapMiB) },
      ]
    } finally {
      relay.child.kill('SIGTERM')
      await new Promise((resolve) => relay.child.once('exit', resolve))
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

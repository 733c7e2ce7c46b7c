/**
 * Workload 6, all on 127.0.0.1 with Node `ws` clients: the relay (its CLI, as its own
 * process) against a raw `ws` server process measured in the same run, alternating.
 * - ingest: changes/s acknowledged, from 1 and from 50 clients (frames of 100 changes,
 *   4 frames in flight per client); raw: the same frames echoed;
 * - fan-out: one write → every one of S subscribers sees it, p50/p99 over subscribers;
 *   raw: the same frame broadcast;
 * - RSS per connected idle client (after hello + subscribe for Outpost; after open for raw).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { decodeClientMessage, encodeMessage, type Change } from '@outpost/core'
import type { BenchContext } from '../lib/context'
import { makeRecord } from '../lib/data'
import { WireClient } from '../lib/outpost-wire'
import type { Cell, Column, ResultRow } from '../lib/results'
import { alternate, quantile, summarize } from '../lib/stats'
import { BENCH_LIMITS } from '../servers/outpost-server'
import { NODE_SOURCE_FLAGS } from '../../scripts/source-conditions'

const BATCH = 100
const IN_FLIGHT = 4

interface Proc {
  readonly port: number
  readonly child: ChildProcess
}

async function spawnServer(command: string, args: string[], cwd: string, portOf: (line: string) => number | undefined): Promise<Proc> {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] })
  // A harness stopped midway (Ctrl-C, timeout) must not leave servers behind.
  const orphanGuard = (): void => void child.kill('SIGKILL')
  process.once('exit', orphanGuard)
  child.once('exit', () => process.off('exit', orphanGuard))
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not report a port in 30 s`)), 30_000)
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)))
    lines.on('line', (line) => {
      const port = portOf(line)
      if (port !== undefined) {
        clearTimeout(timer)
        resolve(port)
      }
    })
  })
  return { port, child }
}

function parseJsonPort(line: string, msg?: string): number | undefined {
  try {
    const parsed = JSON.parse(line) as { port?: unknown; msg?: unknown }
    if (typeof parsed.port === 'number' && (msg === undefined || parsed.msg === msg)) return parsed.port
  } catch {
    // Not a JSON log line: not the one announcing the port.
  }
  return undefined
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /VmRSS:\s+(\d+)/.exec(status)
  return match === null ? Number.NaN : Number(match[1])
}

async function stop(proc: Proc): Promise<void> {
  if (proc.child.exitCode !== null) return
  const exited = new Promise((resolve) => proc.child.once('exit', resolve))
  proc.child.kill('SIGTERM')
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

/** A raw ws client that resolves request promises in order of replies (echo keeps order per socket). */
class RawClient {
  readonly socket: WebSocket
  readonly #waiting: (() => void)[] = []
  onOther: ((data: Buffer) => void) | undefined

  private constructor(socket: WebSocket) {
    this.socket = socket
    socket.on('message', (data: Buffer) => {
      if (data[0] === 1) this.onOther?.(data)
      else this.#waiting.shift()?.()
    })
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    return new RawClient(socket)
  }

  request(frame: Uint8Array): Promise<void> {
    const answered = new Promise<void>((resolve) => this.#waiting.push(resolve))
    this.socket.send(frame)
    return answered
  }

  close(): void {
    this.socket.close()
  }
}

/** Sends `total` changes in frames of BATCH, IN_FLIGHT outstanding; resolves when all are answered. */
async function pump(total: number, send: (k: number) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < total) {
      const k = next
      next += BATCH
      await send(k)
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
}

async function connectAll<T>(count: number, connect: (k: number) => Promise<T>): Promise<T[]> {
  const out: T[] = []
  // In small groups: a burst of hundreds of handshakes at once measures the accept queue, not the relay.
  for (let k = 0; k < count; k += 25) out.push(...(await Promise.all(Array.from({ length: Math.min(25, count - k) }, (_, j) => connect(k + j)))))
  return out
}

/** Extra Node flags for the relay process, e.g. `OUTPOST_BENCH_RELAY_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof'` to profile it. */
function profileFlags(): string[] {
  return (process.env['OUTPOST_BENCH_RELAY_FLAGS'] ?? '').split(' ').filter((flag) => flag !== '')
}

/** Runs workload 6. */
export async function relayLoad(context: BenchContext): Promise<ResultRow[]> {
  const quick = context.quick
  const perRunChanges = quick ? 10_000 : 100_000
  const subscribers = quick ? 100 : 500
  const idle = quick ? 100 : 500
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-relay6-'))
  const config = join(dir, 'relay.json')
  await writeFile(config, JSON.stringify({ limits: BENCH_LIMITS, logLevel: 'error' }))
  const relay = await spawnServer(process.execPath, [...NODE_SOURCE_FLAGS, ...profileFlags(), 'packages/server-lite/src/cli.ts', '--port', '0', '--data-dir', join(dir, 'data'), '--config', config], context.root, (line) => parseJsonPort(line, 'listening'))
  const raw = await spawnServer(process.execPath, ['--import', 'tsx', 'bench/servers/ws-baseline.ts'], context.root, (line) => parseJsonPort(line))
  const relayUrl = `ws://127.0.0.1:${relay.port}`
  try {
    let runId = 0
    // ───── ingest ─────
    const ingest = async (column: Column, clients: number): Promise<number> => {
      const perClient = Math.floor(perRunChanges / clients / BATCH) * BATCH
      const map = `ingest${runId++}`
      if (column === 'outpost') {
        const conns = await connectAll(clients, (k) => WireClient.connect(relayUrl, `ingest-${runId}-${k}`))
        // Changes are built before the clock starts: the figure is the relay's, not the client's.
        const frames = conns.map((c, k) => Array.from({ length: perClient / BATCH }, (_, f) => Array.from({ length: BATCH }, (_, j) => c.change(map, makeRecord(k * perClient + f * BATCH + j)))))
        const t0 = performance.now()
        await Promise.all(conns.map((c, k) => pump(perClient, (i) => c.ops(frames[k]?.[i / BATCH] as Change[]))))
        const seconds = (performance.now() - t0) / 1000
        await Promise.all(conns.map((c) => c.close()))
        return (perClient * clients) / seconds
      }
      const conns = await connectAll(clients, () => RawClient.connect(raw.port))
      const sample = await WireClient.connect(relayUrl, `ingest-sample-${runId}`)
      const frame = encodeMessage({ type: 'ops', id: 1, changes: Array.from({ length: BATCH }, (_, j) => sample.change(map, makeRecord(j))) })
      await sample.close()
      const t0 = performance.now()
      await Promise.all(conns.map((c) => pump(perClient, () => c.request(frame))))
      const seconds = (performance.now() - t0) / 1000
      for (const c of conns) c.close()
      return (perClient * clients) / seconds
    }
    const rows: ResultRow[] = []
    for (const clients of [1, 50]) {
      const outcome = await alternate<Column>(['raw', 'outpost'], context.repeats, async (column, round) => {
        const v = await ingest(column, clients)
        context.log(`  relay ingest ${clients} client(s) ${column} round ${round}: ${Math.round(v)} changes/s`)
        return v
      })
      const cells: Partial<Record<Column, Cell>> = {}
      for (const [column, entry] of outcome) cells[column] = entry.error !== undefined ? { unavailable: entry.error } : summarize(entry.samples)
      rows.push({ workload: `6. relay ingest, ${clients} client${clients > 1 ? 's' : ''}`, metric: `changes acked/s (frames of ${BATCH}, ${IN_FLIGHT} in flight)`, unit: 'changes/s', lowerIsBetter: false, cells, note: 'same frames echoed' })
    }

    // ───── fan-out ─────
    const fanMap = 'fanout'
    const subs = await connectAll(subscribers, async (k) => {
      const c = await WireClient.connect(relayUrl, `sub-${k}`)
      await c.subscribe(1, { map: fanMap })
      return c
    })
    const rawSubs = await connectAll(subscribers, () => RawClient.connect(raw.port))
    const writer = await WireClient.connect(relayUrl, 'fan-writer')
    const rawWriter = await RawClient.connect(raw.port)
    const rounds = quick ? 10 : 20
    let fanRev = 1
    const fan50 = new Map<Column, number[]>()
    const fan99 = new Map<Column, number[]>()
    const fanOutcome = await alternate<Column>(['raw', 'outpost'], context.repeats, async (column, round) => {
      const samples: number[] = []
      for (let r = 0; r < rounds; r++) {
        const rev = fanRev++
        const key = makeRecord(r % 50).id
        let t0 = 0
        const arrivals = column === 'outpost'
          ? subs.map((s) => new Promise<number>((resolve) => {
              const off = s.onMessage((m) => {
                if (m.type === 'changes' && m.changes.some((c) => c.key === key)) {
                  off()
                  resolve(performance.now())
                }
              })
            }))
          : rawSubs.map((s) => new Promise<number>((resolve) => {
              s.onOther = (data) => {
                s.onOther = undefined
                // Decoded as an Outpost subscriber's frame is: all subscribers share this
                // process, so undecoded raw frames would leave the harness's own decode
                // time (serial over S subscribers) in Outpost's column alone.
                decodeClientMessage(data.subarray(1))
                resolve(performance.now())
              }
            }))
        if (column === 'outpost') {
          const change = writer.change(fanMap, makeRecord(r % 50, rev))
          t0 = performance.now()
          void writer.ops([change])
        } else {
          const frame = encodeMessage({ type: 'ops', id: rev, changes: [writer.change(fanMap, makeRecord(r % 50, rev))] })
          const tagged = new Uint8Array(frame.length + 1)
          tagged[0] = 1
          tagged.set(frame, 1)
          t0 = performance.now()
          rawWriter.socket.send(tagged)
        }
        const times = await Promise.all(arrivals)
        for (const t of times) samples.push(t - t0)
      }
      if (round >= context.repeats.warmup) {
        fan50.set(column, [...(fan50.get(column) ?? []), quantile(samples, 0.5)])
        fan99.set(column, [...(fan99.get(column) ?? []), quantile(samples, 0.99)])
      }
      context.log(`  relay fan-out to ${subscribers} ${column} round ${round}: p50 ${quantile(samples, 0.5).toFixed(1)} ms, p99 ${quantile(samples, 0.99).toFixed(1)} ms`)
      return quantile(samples, 0.5)
    })
    const fanCells = (m: Map<Column, number[]>): Partial<Record<Column, Cell>> => {
      const out: Partial<Record<Column, Cell>> = {}
      for (const [column, entry] of fanOutcome) out[column] = entry.error !== undefined ? { unavailable: entry.error } : summarize(m.get(column) ?? [])
      return out
    }
    rows.push({ workload: `6. relay fan-out to ${subscribers} subscribers`, metric: 'p50 write → subscriber', unit: 'ms', lowerIsBetter: true, cells: fanCells(fan50), note: 'ws broadcast, each frame decoded' })
    rows.push({ workload: `6. relay fan-out to ${subscribers} subscribers`, metric: 'p99 write → subscriber', unit: 'ms', lowerIsBetter: true, cells: fanCells(fan99), note: 'ws broadcast, each frame decoded' })
    await Promise.all(subs.map((s) => s.close()))
    for (const s of rawSubs) s.close()
    await writer.close()
    rawWriter.close()

    // ───── RSS per idle client ─────
    await new Promise((resolve) => setTimeout(resolve, 500))
    const rssOutcome = await alternate<Column>(['raw', 'outpost'], context.repeats, async (column, round) => {
      const pid = (column === 'outpost' ? relay : raw).child.pid as number
      const before = await rssKiB(pid)
      let close: () => Promise<void>
      if (column === 'outpost') {
        const conns = await connectAll(idle, async (k) => {
          const c = await WireClient.connect(relayUrl, `idle-${round}-${k}`)
          await c.subscribe(1, { map: 'idle' })
          return c
        })
        close = async () => void (await Promise.all(conns.map((c) => c.close())))
      } else {
        const conns = await connectAll(idle, () => RawClient.connect(raw.port))
        close = async () => conns.forEach((c) => c.close())
      }
      await new Promise((resolve) => setTimeout(resolve, 300))
      const perClient = ((await rssKiB(pid)) - before) / idle
      await close()
      await new Promise((resolve) => setTimeout(resolve, 300))
      context.log(`  relay RSS per idle client ${column} round ${round}: ${perClient.toFixed(1)} KiB`)
      return perClient
    })
    const rssCells: Partial<Record<Column, Cell>> = {}
    for (const [column, entry] of rssOutcome) rssCells[column] = entry.error !== undefined ? { unavailable: entry.error } : summarize(entry.samples)
    rows.push({ workload: `6. relay RSS per idle client (${idle} clients)`, metric: 'RSS growth ÷ clients', unit: 'KiB', lowerIsBetter: true, cells: rssCells, note: 'plain ws connection' })
    return rows
  } finally {
    await stop(relay)
    await stop(raw)
    await rm(dir, { recursive: true, force: true })
  }
}

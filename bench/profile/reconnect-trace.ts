/**
 * Where a reconnect's time goes, in Node: an engine holding N records goes offline, another
 * device changes 100 of them, the engine goes online, and the clock stops when a live query
 * shows all 100. Every WebSocket frame of the reconnect is printed with its time since
 * `setOffline(false)`, its direction, type and size, so waits (timers, round trips, the
 * relay's work, the worker's commit) show as gaps between frames.
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/reconnect-trace.ts [--records 10000] [--rounds 3] [--profile]
 *
 * The relay is its CLI in its own process (as workload 7), so the frame gaps separate the
 * two sides. `--profile` records a CPU profile of this process (the reading engine) during
 * the last round's reconnect and prints where it went; profile the relay with
 * OUTPOST_BENCH_RELAY_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
 *
 * fake-indexeddb stands in for IndexedDB, so its share is only indicative.
 */
import 'fake-indexeddb/auto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IDBFactory } from 'fake-indexeddb'
import { WebSocket } from 'ws'
import { decode } from '@outpost/core'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createEngine, type Engine } from '../../packages/worker/src/engine'
import type { WebSocketConstructor } from '../../packages/worker/src/sync/sync-client'
import { Session } from 'node:inspector/promises'
import { makeRecord } from '../lib/data'
import { plant, startRelay } from '../workloads/million'
import { summarize, type CpuProfile } from './cpu-profile'

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const n = arg('--records', 10_000)
const rounds = arg('--rounds', 3)
const CHANGED = 100
const profile = process.argv.includes('--profile')
const inspector = new Session()
inspector.connect()

function ok<T>(r: { ok: true; value: T } | { ok: false; error: { message: string } }): T {
  if (!r.ok) throw new Error(r.error.message)
  return r.value
}

/** Frames seen by traced sockets: [ms since the mark, direction, type, bytes]. */
let trace: [number, '↑' | '↓', string, number][] = []
let mark = performance.now()

function typeOf(data: unknown): string {
  try {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array)
    const message = decode(bytes) as { type?: unknown } | unknown[]
    if (Array.isArray(message)) return `v2[${String(message[0])}]`
    return String((message as { type?: unknown }).type ?? '?')
  } catch {
    return 'undecodable'
  }
}

/** A ws WebSocket that records every frame it sends and receives. */
class TracedWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols)
    this.on('message', (data: Buffer) => trace.push([performance.now() - mark, '↓', typeOf(data), data.byteLength]))
  }
  override send(data: any, ...rest: any[]): void {
    trace.push([performance.now() - mark, '↑', typeOf(data), (data as Uint8Array).byteLength ?? 0])
    ;(super.send as (...a: unknown[]) => void)(data, ...rest)
  }
}

const dir = await mkdtemp(join(tmpdir(), 'outpost-reconnect-'))
try {
  await plant(dir, n)
  const relay = await startRelay(join(dirname(fileURLToPath(import.meta.url)), '..', '..'), dir)
  const url = `ws://127.0.0.1:${relay.port}`
  const engine: Engine = createEngine({ name: 'reader', mode: 'in-page', indexedDB: new IDBFactory(), url, WebSocket: TracedWebSocket as unknown as WebSocketConstructor })
  const writer: Engine = createEngine({ name: 'writer', mode: 'in-page', indexedDB: new IDBFactory(), url, WebSocket: WebSocket as unknown as WebSocketConstructor })
  ok(await engine.subscribeShape({ map: 'items' }))
  while (engine.receivedRecords < n) await new Promise((r) => setTimeout(r, 5))
  await engine.flush()
  const times: number[] = []
  for (let round = 1; round <= rounds; round++) {
    await engine.setOffline(true)
    let resolveSeen!: (at: number) => void
    const seen = new Promise<number>((resolve) => (resolveSeen = resolve))
    const id = ok(
      await engine.subscribeQuery({ map: 'items', where: { eq: ['rev', round] } }, (rows) => {
        if ((rows as unknown[]).length === CHANGED) resolveSeen(performance.now())
      }),
    )
    for (let k = 0; k < CHANGED; k++) {
      const i = Math.floor((k * n) / CHANGED)
      const record = makeRecord(i)
      ok(await writer.set('items', record.id, { ...record, rev: round } as never))
    }
    while ((await writer.status()).pendingWrites > 0) await new Promise((r) => setTimeout(r, 20))
    const profiled = profile && round === rounds
    if (profiled) {
      await inspector.post('Profiler.enable')
      await inspector.post('Profiler.setSamplingInterval', { interval: 200 })
      await inspector.post('Profiler.start')
    }
    trace = []
    mark = performance.now()
    await engine.setOffline(false)
    const at = await seen
    if (profiled) {
      const { profile: cpu } = (await inspector.post('Profiler.stop')) as unknown as { profile: CpuProfile }
      console.log(summarize(cpu, 30))
    }
    times.push(at - mark)
    await engine.unsubscribeQuery(id)
    console.log(`round ${round}: all ${CHANGED} visible after ${(at - mark).toFixed(1)} ms`)
    for (const [t, dir, type, bytes] of trace.filter(([t]) => t <= at - mark + 1)) console.log(`  ${t.toFixed(1).padStart(8)} ms ${dir} ${type.padEnd(18)} ${bytes} B`)
  }
  times.sort((a, b) => a - b)
  console.log(`reconnect ${CHANGED} of ${n}: median ${times[Math.floor(times.length / 2)]!.toFixed(1)} ms over ${rounds} rounds`)
  await writer.close()
  await engine.close()
  relay.child.kill('SIGINT')
  await new Promise((resolve) => relay.child.once('exit', resolve))
} finally {
  await rm(dir, { recursive: true, force: true })
}

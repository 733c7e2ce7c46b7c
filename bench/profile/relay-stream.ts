/**
 * The relay's streaming rate alone: N records planted (as workload 7), the relay CLI in its
 * own process, one Node protocol client with flow control receiving them all; prints the
 * time, records/s, the time from `subscribe` to the first `changes` frame, and the relay's
 * peak RSS / anonymous RSS. Pass relay flags with
 * `OUTPOST_BENCH_RELAY_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof'` to profile it.
 * `--relay-root <dir>[,<dir>…]` runs the relay of other checkouts (same store format) against
 * the same planted data and client, taking turns run by run (A/B alternated).
 *   node --conditions=@outpost/source --import tsx bench/profile/relay-stream.ts [--records 100000] [--runs 1] [--relay-root ../other]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { readFileSync } from 'node:fs'
import { rssAnonKiB, rssKiB } from '../lib/process-memory'

/** CPU time (user + system, ms) `pid` used so far: less sensitive to a loaded machine than wall time. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
}
import WebSocket from 'ws'
import { PROTOCOL_VERSIONS, decodeServerMessage, encodeMessage, type ClientMessage, type ReplicaId } from '@outpost/core'
import { plant, startRelay } from '../workloads/million'

/** The client's flow-control window (as workload 7). */
const WINDOW = 4 * 1024 * 1024

/** Subscribes to the whole map with flow control; what arrived, the total time and the time from `subscribe` to the first frame. */
async function stream(port: number): Promise<{ records: number; bytes: number; ms: number; firstMs: number; peakHeapMiB: number }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('error', reject)
  })
  const send = (message: ClientMessage): void => socket.send(encodeMessage(message))
  let records = 0
  let bytes = 0
  let peakHeap = 0
  let subscribedAt = 0
  let firstMs = -1
  const started = performance.now()
  const done = new Promise<void>((resolve, reject) => {
    socket.on('message', (data: Buffer) => {
      bytes += data.length
      const message = decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.length))
      if (message.type === 'welcome') {
        subscribedAt = performance.now()
        send({ type: 'subscribe', sub: 1, shape: { map: 'items' } })
      } else if (message.type === 'changes') {
        if (firstMs < 0) firstMs = performance.now() - subscribedAt
        records += message.changes.length
        if (message.paced === true) send({ type: 'credit', bytes: data.length })
        if (records % 100_000 < message.changes.length) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
      } else if (message.type === 'synced') resolve()
      else if (message.type === 'error') reject(new Error(JSON.stringify(message.error)))
    })
    socket.once('close', () => reject(new Error('the relay closed the connection')))
  })
  send({ type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId: 'bench-relay-stream' as ReplicaId, clientTime: Date.now(), window: WINDOW })
  await done
  const ms = performance.now() - started
  socket.removeAllListeners('close')
  socket.close()
  return { records, bytes, ms, firstMs, peakHeapMiB: peakHeap / 1024 / 1024 }
}

const args = process.argv.slice(2)
const arg = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`)
  return at < 0 ? fallback : Number(args[at + 1])
}
const n = arg('records', 100_000)
const runs = arg('runs', 1)
const relayRootAt = args.indexOf('--relay-root')
const roots = relayRootAt < 0 ? [resolve(import.meta.dirname, '../..')] : (args[relayRootAt + 1] as string).split(',').map((dir) => resolve(dir))
const dir = await mkdtemp(join(tmpdir(), 'outpost-relay-stream-'))
try {
  const t0 = performance.now()
  await plant(dir, n)
  console.log(`planted ${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  for (let run = 0; run < runs; run++) {
    const root = roots[run % roots.length] as string
    const relay = await startRelay(root, dir)
    const pid = relay.child.pid as number
    await new Promise((r) => setTimeout(r, 1_000))
    let peak = await rssKiB(pid)
    let peakAnon = await rssAnonKiB(pid)
    const idleAnon = peakAnon
    const sampler = setInterval(() => {
      void rssKiB(pid).then((kib) => (peak = Math.max(peak, kib || 0)))
      void rssAnonKiB(pid).then((kib) => (peakAnon = Math.max(peakAnon, kib || 0)))
    }, 100)
    const cpu0 = cpuMs(pid)
    const result = await stream(relay.port)
    const cpu = cpuMs(pid) - cpu0
    clearInterval(sampler)
    console.log(`run ${run + 1} (relay ${root}): ${result.records} records in ${(result.ms / 1000).toFixed(2)} s (${Math.round(result.records / (result.ms / 1000))}/s), first frame ${result.firstMs.toFixed(0)} ms, relay CPU ${(cpu / 1000).toFixed(2)} s, ${(result.bytes / 2 ** 20).toFixed(1)} MiB; relay peak RSS ${(peak / 1024).toFixed(0)} MiB, anon idle ${(idleAnon / 1024).toFixed(0)} peak ${(peakAnon / 1024).toFixed(0)} MiB; client peak heap ${result.peakHeapMiB.toFixed(0)} MiB; load ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`)
    relay.child.kill('SIGTERM')
    await new Promise((r) => relay.child.once('exit', r))
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}

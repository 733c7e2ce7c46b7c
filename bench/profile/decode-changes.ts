/**
 * The worker's decode of an initial sync alone, in Node: the wire-v2 `changes` frames a relay
 * sends for N bench records (2,000 records a frame, as `paced-streams.ts` cuts them), decoded
 * and validated as `FrameCodec.decode` does (`decodeServerMessage` with the default wire
 * limits, version 2). Prints the median time per run and per 100k records, and the load.
 *
 *   nice -n 19 node --import tsx bench/profile/decode-changes.ts [--records 100000] [--runs 9] [--cpu-prof]
 *
 * Core is imported by a relative path, so the script measures the checkout it sits in: to
 * compare two commits, run it from a second worktree of the other one (its node_modules may be
 * a symlink to this one's) and alternate the two. Compare several processes each: V8 settles
 * some processes into a state where the same decode costs 3-4 times as much CPU (more GC,
 * slower unpacking). That is allocation-site pretenuring (changes that survive a scavenge
 * mid-frame make V8 allocate them in old space): with `--no-allocation-site-pretenuring`
 * every process is fast. A worker keeps decoded changes until they are applied, so it may
 * well run pretenured: fewer objects per record help in both states.
 */
import { loadavg } from 'node:os'
import { DEFAULT_WIRE_LIMITS, decodeServerMessage, encodeMessage, lwwSetState, type Change, type LwwRecordState, type ServerMessage, type Stamp } from '../../packages/core/src/index'
import { makeRecord } from '../lib/data'

const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`)
  return at < 0 ? fallback : Number(process.argv[at + 1])
}
const n = arg('records', 100_000)
const runs = arg('runs', 9)
const PER_FRAME = 2_000

// The stamps `bench/workloads/million.ts` plants: a tombstone and one stamp for all fields.
const stamp = (i: number): Stamp => `${(1_700_000_000_000 + i).toString(36).padStart(10, '0')}-0000-seed` as Stamp
const frames: Uint8Array[] = []
for (let i = 0; i < n; i += PER_FRAME) {
  const changes: Change[] = []
  for (let j = i; j < Math.min(n, i + PER_FRAME); j++) {
    const record = makeRecord(j)
    const state = lwwSetState(record as never, stamp(2 * j), stamp(2 * j + 1)) as LwwRecordState
    changes.push({ kind: 'lww', map: 'items', key: record.id, state } as Change)
  }
  frames.push(encodeMessage({ type: 'changes', sub: 1, changes, paced: true, frame: frames.length + 1 }, 2))
}
const bytes = frames.reduce((sum, frame) => sum + frame.length, 0)

function decodeAll(): number {
  let records = 0
  for (const frame of frames) {
    const message: ServerMessage = decodeServerMessage(frame, DEFAULT_WIRE_LIMITS, 2)
    if (message.type !== 'changes') throw new Error(`decoded a ${message.type} message`)
    records += message.changes.length
  }
  return records
}

// Warm up (JIT), then time.
for (let i = 0; i < 3; i++) decodeAll()
// Wall time and this process's CPU time (user + system, GC threads included): on a loaded
// machine the CPU time is the steadier figure.
const wall: number[] = []
const cpu: number[] = []
for (let run = 0; run < runs; run++) {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const records = decodeAll()
  const c = process.cpuUsage(c0)
  wall.push(performance.now() - t0)
  cpu.push((c.user + c.system) / 1000)
  if (records !== n) throw new Error(`decoded ${records} records, not ${n}`)
}
const per100k = (ms: number): string => ((ms * 100_000) / n).toFixed(0)
const summary = (times: number[]): string => {
  const sorted = [...times].sort((a, b) => a - b)
  return `median ${per100k(sorted[sorted.length >> 1] as number)} (min ${per100k(sorted[0] as number)}, max ${per100k(sorted[sorted.length - 1] as number)})`
}
console.log(`${n} records in ${frames.length} frames (${(bytes / 2 ** 20).toFixed(1)} MiB), ${runs} runs, ms per 100k records: wall ${summary(wall)}, CPU ${summary(cpu)}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)

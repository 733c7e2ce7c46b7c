/**
 * The LMDB store's ingest alone (no relay, no sockets): `applyWrites` calls of 64 new
 * bench records each, from 50 writers with sequential keys (as workload 6's clients),
 * `--calls` of them started in one event turn (lmdb batches them into one transaction),
 * `--commits` times. Prints changes/s, commit p50/p90 and the bytes the process wrote
 * per commit (`/proc/self/io` write_bytes: what reached the disk, LMDB pages and fsyncs).
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/lmdb-ingest.ts [--calls 4] [--commits 200] [--updates]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lwwSetState, mergeLww, type LwwRecordState, type Stamp, type WriteRequest } from '@outpost/core'
import { LmdbStore } from '@outpost/server-lite'
import { makeRecord } from '../lib/data'

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at < 0 ? fallback : Number(process.argv[at + 1])
}
const CALLS = arg('calls', 4)
const COMMITS = arg('commits', 200)
const PER_CALL = 64
const WRITERS = 50
const UPDATES = process.argv.includes('--updates')

function writeBytes(): number {
  const line = readFileSync('/proc/self/io', 'utf8').split('\n').find((l) => l.startsWith('write_bytes:')) as string
  return Number(line.split(':')[1])
}

let counter = 0
function stamp(): Stamp {
  counter++
  return `${(1_700_000_000_000 + counter).toString(36).padStart(10, '0')}-0000-bench` as Stamp
}

const dir = mkdtempSync(join(tmpdir(), 'outpost-lmdb-ingest-'))
const store = LmdbStore.open({ path: dir })
const next = new Array<number>(WRITERS).fill(0)
let writer = 0
function request(): WriteRequest {
  const w = writer++ % WRITERS
  const i = UPDATES ? Math.floor(Math.random() * 2000) : (next[w] = (next[w] as number) + 1) - 1
  const record = makeRecord(w * 1_000_000 + i)
  const state = lwwSetState(record as never, stamp(), stamp())
  return { map: 'm:ingest', kind: 'lww', key: record.id, decide: (current) => ({ state: current === undefined ? state : mergeLww(current.state as LwwRecordState, state) }) }
}

const times: number[] = []
const bytes0 = writeBytes()
const t0 = performance.now()
for (let c = 0; c < COMMITS; c++) {
  const started = performance.now()
  await Promise.all(Array.from({ length: CALLS }, () => store.applyWrites(Array.from({ length: PER_CALL }, request))))
  times.push(performance.now() - started)
}
const seconds = (performance.now() - t0) / 1000
const written = writeBytes() - bytes0
times.sort((a, b) => a - b)
const changes = COMMITS * CALLS * PER_CALL
console.log(JSON.stringify({ calls: CALLS, changesPerCommit: CALLS * PER_CALL, updates: UPDATES, changesPerSecond: Math.round(changes / seconds), commitP50ms: +(times[Math.floor(times.length / 2)] as number).toFixed(1), commitP90ms: +(times[Math.floor(times.length * 0.9)] as number).toFixed(1), bytesPerCommit: Math.round(written / COMMITS), bytesPerChange: Math.round(written / changes) }))
await store.close()
rmSync(dir, { recursive: true, force: true })

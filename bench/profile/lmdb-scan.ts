/**
 * The LMDB store's full scan in `(leaf path, key)` order (what a streamed initial sync reads):
 * `--records` bench records planted in one map, then scanned in pages of `--page`, `--runs` times.
 * Prints planting and scanning rates.
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/lmdb-scan.ts [--records 100000] [--page 1000] [--runs 3]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lwwSetState, type Stamp, type SyncRecord } from '@outpost/core'
import { LmdbStore } from '@outpost/server-lite'
import { makeRecord } from '../lib/data'

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`)
  return at < 0 ? fallback : Number(process.argv[at + 1])
}
const RECORDS = arg('records', 100_000)
const PAGE = arg('page', 1000)
const RUNS = arg('runs', 3)

const dir = mkdtempSync(join(tmpdir(), 'outpost-lmdb-scan-'))
const store = LmdbStore.open({ path: dir })
const stamp = (i: number): Stamp => `${(1_700_000_000_000 + i).toString(36).padStart(10, '0')}-0000-bench` as Stamp
const t0 = performance.now()
for (let from = 0; from < RECORDS; from += 5000) {
  const requests = Array.from({ length: Math.min(5000, RECORDS - from) }, (_, j) => {
    const record = makeRecord(from + j)
    const state = lwwSetState(record as never, stamp(2 * (from + j)), stamp(2 * (from + j) + 1))
    return { map: 'm:scan', kind: 'lww' as const, key: record.id, decide: () => ({ state }) }
  })
  await store.applyWrites(requests)
}
const plant = (performance.now() - t0) / 1000
for (let run = 0; run < RUNS; run++) {
  const started = performance.now()
  let n = 0
  let last: SyncRecord | undefined
  for (;;) {
    const page = await store.scanRecords('m:scan', last === undefined ? { limit: PAGE } : { after: last.key, limit: PAGE })
    n += page.length
    last = page.at(-1)
    if (page.length < PAGE) break
  }
  const seconds = (performance.now() - started) / 1000
  console.log(JSON.stringify({ records: n, plantPerSecond: Math.round(RECORDS / plant), scanPerSecond: Math.round(n / seconds), scanSeconds: +seconds.toFixed(3) }))
}
await store.close()
rmSync(dir, { recursive: true, force: true })

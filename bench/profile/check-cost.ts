/**
 * What checking a value costs where: the store's commit check (`assertStoredValue` over each
 * stored LWW state, what IdbStore.commit did on every flush) against the check at receipt
 * (`assertReceivedChange` over each change, what shape-sync does now), over N of the
 * benchmarks' ~200 B records, best of `--runs`. CPU only, no I/O:
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/check-cost.ts [--records 36000] [--runs 7]
 */
import { assertReceivedChange, assertStoredValue, lwwSetState, type Change, type LwwRecordState, type Stamp, type Value } from '@outpost/core'
import { makeRecord } from '../lib/data'

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const n = arg('--records', 36_000)
const runs = arg('--runs', 7)
const stamp = (i: number): Stamp => `${(1_700_000_000_000 + i).toString(36).padStart(10, '0')}-0000-seed` as Stamp
const changes: Change[] = Array.from({ length: n }, (_, i) => {
  const record = makeRecord(i)
  return { kind: 'lww', map: 'items', key: record.id, state: lwwSetState(record as never, stamp(2 * i), stamp(2 * i + 1)) as LwwRecordState }
})

function best(what: string, fn: () => void): void {
  const times: number[] = []
  for (let r = 0; r < runs; r++) {
    const t = performance.now()
    fn()
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  console.log(`${what}: best ${(times[0] as number).toFixed(1)} ms, median ${(times[times.length >> 1] as number).toFixed(1)} ms over ${runs} runs (${n} records)`)
}

best('commit check (assertStoredValue per stored state)', () => {
  for (const c of changes) assertStoredValue(c.state as unknown as Value, `r/lww/items/${c.key}`)
})
best('receipt check (assertReceivedChange per change)', () => {
  for (const c of changes) assertReceivedChange(c)
})

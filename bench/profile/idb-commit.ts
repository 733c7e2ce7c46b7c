/**
 * Times single-record local commits of the IndexedDB store in Node (fake-indexeddb stands
 * in for the browser's IndexedDB, so absolute figures are only indicative): the shape of
 * the committer's local write (the record + its outbox entry + `opSeq`/`hlc` meta, one
 * transaction) and of the relay's ack (delete the outbox entry), on a map of `--records`
 * records bulk-loaded first.
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/idb-commit.ts [--records 20000] [--writes 500] [--hot 64] [--root /work/wt-other]
 *
 * `--root` loads the store from another worktree (A/B against another branch with the same script).
 */
import 'fake-indexeddb/auto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { IDBFactory } from 'fake-indexeddb'
import type { Value } from '@outpost/core'

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : (process.argv[i + 1] as string)
}
const records = Number(arg('--records', '20000'))
const writes = Number(arg('--writes', '500'))
const root = resolve(arg('--root', '.'))
/** Writes go to this many distinct keys (an app editing a working set); 0: spread over the whole map. */
const hot = Number(arg('--hot', '64'))

type StoreModule = typeof import('../../packages/worker/src/store/idb-store')
const { IdbStore } = (await import(pathToFileURL(resolve(root, 'packages/worker/src/store/idb-store.ts')).href)) as StoreModule

function record(i: number, stamp: string): Value {
  return { fields: [['title', `todo number ${i}`], ['done', i % 2 === 0], ['owner', 'u1'], ['rank', i]].map(([name, value]) => [name, value, stamp]) as unknown as Value[], deleted: null } as unknown as Value
}

const store = await IdbStore.open('profile-commit', { indexedDB: new IDBFactory() })
await store.commit({ puts: Array.from({ length: records }, (_, i) => ({ collection: 'map:todos', key: `t${i}`, value: record(i, '0000000001-0000-r0') })) })

const writeMs: number[] = []
const ackMs: number[] = []
for (let i = 0; i < writes; i++) {
  const key = `t${(i * 7919) % (hot > 0 ? hot : records)}`
  const stamp = `${String(1_000_000 + i).padStart(10, '0')}-0000-r1`
  const opKey = String(i + 1).padStart(15, '0')
  let t = performance.now()
  await store.commit({
    puts: [
      { collection: 'map:todos', key, value: record(i, stamp) },
      { collection: 'outbox', key: opKey, value: { opId: i + 1, change: { kind: 'lww', map: 'todos', key, state: record(i, stamp) }, at: Date.now(), offset: 0 } as unknown as Value },
    ],
    meta: [
      { key: 'opSeq', value: i + 1 },
      { key: 'hlc', value: stamp },
    ],
  })
  writeMs.push(performance.now() - t)
  t = performance.now()
  await store.commit({ deletes: [{ collection: 'outbox', key: opKey }] })
  ackMs.push(performance.now() - t)
}
await store.close()

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
const fmt = (xs: number[]): string => `mean ${mean(xs).toFixed(3)} p50 ${pct(xs, 0.5).toFixed(3)} p99 ${pct(xs, 0.99).toFixed(3)} ms`
console.log(`root ${root}; ${records} records, ${writes} single-record writes over ${hot > 0 ? hot : records} keys`)
console.log(`  write commit: ${fmt(writeMs)}`)
console.log(`  ack commit:   ${fmt(ackMs)}`)
console.log(`  store ${JSON.stringify(store.stats)}`)

/**
 * A simulated network of replicas converging.
 *
 * Five replicas, each with its own HLC (clock skewed by up to ±25 s, with occasional jumps,
 * so every pair stays within the 60 s drift limit) and one CrdtMap per collection, make
 * random writes on a few keys: LWW set/update/delete, OR add/remove, counter add. Each write
 * is broadcast as a state-based change; the network delivers messages in random order,
 * duplicates 10%, drops 10% (the sender retries them later) and takes replicas offline for a
 * while (they keep writing). After everything is delivered:
 *  - every replica holds the same state for every key of every collection;
 *  - that state reads as an independent sequential model: for LWW, per field the write with
 *    the greatest stamp, minus fields not newer than the greatest tombstone; for OR, the
 *    values of adds whose tag no remove observed; for counters, the sum of all deltas;
 *  - every replica's Merkle root of every collection is the same.
 *
 * Each seed replays exactly (OUTPOST_SEED runs one seed); OUTPOST_SIM_SEEDS sets how many
 * seeds run (default 1000). A failure names its seed.
 */
import { describe, expect, it } from 'vitest'
import { Hlc, maxStamp } from '../src/clock'
import { CrdtMap, counterAddState, counterValue, lwwDeleteState, lwwSetState, lwwUpdateState, lwwView, orAddState, orRemoveState, orValues, stateEquals } from '../src/crdt'
import { MerkleTree, changeDigest } from '../src/merkle'
import type { Change, CollectionKind, CounterState, LwwRecordState, OrSetState, RecordValue, ReplicaId, Stamp, Value } from '../src/types'
import { compareValues, getField, recordFromEntries, valuesEqual } from '../src/value'
import { prng } from '../src/testing/random'

const FIRST_SEED = process.env['OUTPOST_SEED'] !== undefined ? Number(process.env['OUTPOST_SEED']) : Math.floor(Math.random() * 2 ** 31)
const SEEDS = process.env['OUTPOST_SEED'] !== undefined ? 1 : Math.max(1, Number(process.env['OUTPOST_SIM_SEEDS'] ?? 1000))

const REPLICA_COUNT = 5
const STEPS = 120
const KEYS = ['k0', 'k1', '__proto__', '']
const FIELDS = ['title', 'done', '__proto__', 'constructor', '']
const VALUES: Value[] = [null, true, false, 0, 1, 'a', 'b', '', [1], recordFromEntries([['__proto__', 1]])]
const LWW_MAP = 'todos'
const OR_MAP = 'tags'
const COUNTERS = ['likes', 'views']


interface Replica {
  readonly id: ReplicaId
  readonly hlc: Hlc
  readonly lww: CrdtMap<LwwRecordState>
  readonly or: CrdtMap<OrSetState>
  /** Keyed by counter name (a counter change's `map`). */
  readonly counters: CrdtMap<CounterState>
  online: boolean
}

interface Message {
  readonly to: number
  readonly from: number
  readonly change: Change
}

/** The sequential model, built from the writes alone, never from merges. */
interface Model {
  readonly lwwFields: Map<string, Map<string, { value: Value; stamp: Stamp }>>
  readonly lwwTombs: Map<string, Stamp>
  readonly orAdds: Map<string, [Stamp, Value][]>
  readonly orRemoved: Set<Stamp>
  readonly counters: Map<string, number>
}

/** Figures summed over all seeds, printed at the end. */
const totals = { writes: 0, deliveries: 0, duplicates: 0, drops: 0, disconnects: 0, noOpApplies: 0, keys: 0 }

function changeMaxStamp(change: Change): Stamp | null {
  let max: Stamp | null = null
  switch (change.kind) {
    case 'lww':
      max = change.state.deleted
      for (const entry of change.state.fields) max = maxStamp(max, entry[2])
      return max
    case 'or':
      for (const [tag] of change.state.adds) max = maxStamp(max, tag)
      for (const tag of change.state.removes) max = maxStamp(max, tag)
      return max
    case 'counter':
      return null
  }
}

function applyChange(replica: Replica, change: Change): boolean {
  switch (change.kind) {
    case 'lww':
      return replica.lww.apply(change.key, change.state) !== undefined
    case 'or':
      return replica.or.apply(change.key, change.state) !== undefined
    case 'counter':
      return replica.counters.apply(change.map, change.state) !== undefined
  }
}

function simulate(seed: number): void {
  const random = prng(seed)
  const int = (n: number): number => Math.floor(random() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T
  let time = 1_700_000_000_000

  // Each replica's wall clock is true time plus its skew.
  const skews: number[] = []
  const replicas: Replica[] = []
  for (let i = 0; i < REPLICA_COUNT; i++) {
    const id = `r${i}` as ReplicaId
    skews.push(int(40_001) - 20_000)
    const hlc = new Hlc({ replicaId: id, now: () => time + (skews[i] ?? 0) })
    replicas.push({ id, hlc, lww: CrdtMap.of('lww'), or: CrdtMap.of('or'), counters: CrdtMap.of('counter'), online: true })
  }
  const model: Model = { lwwFields: new Map(), lwwTombs: new Map(), orAdds: new Map(), orRemoved: new Set(), counters: new Map() }
  let pending: Message[] = []
  let retry: Message[] = []

  const write = (from: number, change: Change): void => {
    const replica = replicas[from] as Replica
    applyChange(replica, change)
    totals.writes++
    for (let to = 0; to < REPLICA_COUNT; to++) if (to !== from) pending.push({ from, to, change })
  }

  const recordLww = (key: string, record: RecordValue, stamp: Stamp): void => {
    let fields = model.lwwFields.get(key)
    if (fields === undefined) model.lwwFields.set(key, (fields = new Map()))
    for (const name of Object.keys(record)) {
      const seen = fields.get(name)
      if (seen === undefined || stamp > seen.stamp) fields.set(name, { value: getField(record, name) as Value, stamp })
    }
  }
  const recordTomb = (key: string, stamp: Stamp): void => {
    const seen = model.lwwTombs.get(key)
    if (seen === undefined || stamp > seen) model.lwwTombs.set(key, stamp)
  }
  const randomRecord = (): RecordValue => {
    const names = FIELDS.filter(() => random() < 0.4)
    return recordFromEntries(names.map((name) => [name, pick(VALUES)]))
  }

  const doWrite = (from: number): void => {
    const replica = replicas[from] as Replica
    const key = pick(KEYS)
    const roll = random()
    if (roll < 0.15) {
      const record = randomRecord()
      const d = replica.hlc.tick()
      const f = replica.hlc.tick()
      recordTomb(key, d)
      recordLww(key, record, f)
      write(from, { kind: 'lww', map: LWW_MAP, key, state: lwwSetState(record, d, f) })
    } else if (roll < 0.35) {
      const patch = randomRecord()
      const s = replica.hlc.tick()
      recordLww(key, patch, s)
      write(from, { kind: 'lww', map: LWW_MAP, key, state: lwwUpdateState(patch, s) })
    } else if (roll < 0.45) {
      const s = replica.hlc.tick()
      recordTomb(key, s)
      write(from, { kind: 'lww', map: LWW_MAP, key, state: lwwDeleteState(s) })
    } else if (roll < 0.65) {
      const value = pick(VALUES)
      const tag = replica.hlc.tick()
      const adds = model.orAdds.get(key) ?? []
      adds.push([tag, value])
      model.orAdds.set(key, adds)
      write(from, { kind: 'or', map: OR_MAP, key, state: orAddState(value, tag) })
    } else if (roll < 0.8) {
      const current = replica.or.get(key)
      if (current === undefined) return
      const present = orValues(current)
      const value = present.length > 0 && random() < 0.8 ? pick(present) : pick(VALUES)
      // The model's own reading of "observed": the live adds of an equal value this replica holds.
      const dead = new Set(current.removes)
      const observed = current.adds.filter(([tag, v]) => !dead.has(tag) && valuesEqual(v, value)).map(([tag]) => tag)
      for (const tag of observed) model.orRemoved.add(tag)
      const removal = orRemoveState(current, value)
      write(from, { kind: 'or', map: OR_MAP, key, state: removal })
    } else {
      const name = pick(COUNTERS)
      const delta = int(11) - 5
      model.counters.set(name, (model.counters.get(name) ?? 0) + delta)
      const current = replica.counters.get(name) ?? []
      write(from, { kind: 'counter', map: name, key: '', state: counterAddState(current, replica.id, delta) })
    }
  }

  const deliver = (index: number, lossy: boolean): void => {
    const message = pending[index] as Message
    if (lossy && random() < 0.1) {
      // Dropped on the wire: the sender's outbox keeps it and retries later.
      pending.splice(index, 1)
      retry.push(message)
      totals.drops++
      return
    }
    const duplicate = lossy && random() < 0.1
    if (duplicate) totals.duplicates++
    else pending.splice(index, 1)
    const to = replicas[message.to] as Replica
    const stamp = changeMaxStamp(message.change)
    if (stamp !== null) to.hlc.receive(stamp)
    if (!applyChange(to, message.change)) totals.noOpApplies++
    totals.deliveries++
  }

  for (let step = 0; step < STEPS; step++) {
    const roll = random()
    if (roll < 0.45) {
      doWrite(int(REPLICA_COUNT))
    } else if (roll < 0.85) {
      const deliverable = pending.map((m, i) => [m, i] as const).filter(([m]) => (replicas[m.from] as Replica).online && (replicas[m.to] as Replica).online)
      if (deliverable.length > 0) deliver(pick(deliverable)[1], true)
    } else if (roll < 0.9) {
      time += int(2_000)
    } else if (roll < 0.93) {
      // A wall clock jumps (NTP correction), staying within ±25 s of true time.
      const i = int(REPLICA_COUNT)
      skews[i] = Math.max(-25_000, Math.min(25_000, (skews[i] ?? 0) + int(10_001) - 5_000))
    } else if (roll < 0.97) {
      const replica = pick(replicas)
      replica.online = !replica.online
      if (!replica.online) totals.disconnects++
    } else {
      pending = pending.concat(retry)
      retry = []
    }
  }

  // Everyone reconnects and the outboxes drain.
  for (const replica of replicas) replica.online = true
  pending = pending.concat(retry)
  retry = []
  while (pending.length > 0) deliver(int(pending.length), false)

  check(seed, replicas, model)
}

function check(seed: number, replicas: Replica[], model: Model): void {
  const where = `(replay with OUTPOST_SEED=${seed})`
  const first = replicas[0] as Replica
  for (const replica of replicas) {
    for (const [kind, a, b] of [
      ['lww', first.lww, replica.lww],
      ['or', first.or, replica.or],
      ['counter', first.counters, replica.counters],
    ] as const) {
      expect([...b.keys()].sort(), `${kind} keys of ${replica.id} ${where}`).toEqual([...a.keys()].sort())
      for (const [key, state] of a.entries()) {
        const other = b.get(key)
        expect(other !== undefined && stateEquals(kind as CollectionKind, state as never, other as never), `${kind} state of ${JSON.stringify(key)} on ${replica.id} ${where}`).toBe(true)
      }
    }
  }
  totals.keys += first.lww.size + first.or.size + first.counters.size

  for (const replica of replicas) {
    for (const key of KEYS) {
      const fields = model.lwwFields.get(key)
      const tomb = model.lwwTombs.get(key)
      const expected = [...(fields ?? new Map<string, { value: Value; stamp: Stamp }>()).entries()]
        .filter(([, reg]) => tomb === undefined || reg.stamp > tomb)
        .map(([name, reg]) => [name, reg.value] as [string, Value])
        .sort((x, y) => (x[0] < y[0] ? -1 : 1))
      const state = replica.lww.get(key)
      const view = state === undefined ? undefined : lwwView(state)
      const actual = view === undefined ? [] : Object.keys(view).sort().map((name) => [name, getField(view, name)])
      expect(actual, `LWW ${JSON.stringify(key)} on ${replica.id} ${where}`).toEqual(expected)

      const live = (model.orAdds.get(key) ?? []).filter(([tag]) => !model.orRemoved.has(tag)).map(([, value]) => value)
      const distinct = live.sort(compareValues).filter((value, i) => i === 0 || !valuesEqual(live[i - 1] as Value, value))
      const orState = replica.or.get(key)
      expect(orState === undefined ? [] : orValues(orState), `OR ${JSON.stringify(key)} on ${replica.id} ${where}`).toEqual(distinct)
    }
    for (const name of COUNTERS) {
      const state = replica.counters.get(name)
      expect(state === undefined ? 0 : counterValue(state), `counter ${name} on ${replica.id} ${where}`).toBe(model.counters.get(name) ?? 0)
    }
  }

  const roots = replicas.map((replica) => {
    const trees = [
      MerkleTree.from([...replica.lww.entries()].map(([key, state]) => [key, changeDigest({ kind: 'lww', map: LWW_MAP, key, state })] as const)),
      MerkleTree.from([...replica.or.entries()].map(([key, state]) => [key, changeDigest({ kind: 'or', map: OR_MAP, key, state })] as const)),
      MerkleTree.from([...replica.counters.entries()].map(([name, state]) => [name, changeDigest({ kind: 'counter', map: name, key: '', state })] as const)),
    ]
    return trees.map((tree) => tree.root().hash).join('/')
  })
  for (const root of roots) expect(root, `Merkle roots ${where}`).toBe(roots[0])
}

describe('simulated network', () => {
  it(`converges to the sequential model on ${SEEDS} seeds`, () => {
    const started = performance.now()
    for (let i = 0; i < SEEDS; i++) simulate((FIRST_SEED + i) >>> 0)
    const ms = Math.round(performance.now() - started)
    console.log(`simulation: ${SEEDS} seeds from ${FIRST_SEED} in ${ms} ms`, totals)
    // The run must have exercised what it claims to: duplicates recognised as no-ops, drops, disconnects.
    expect(totals.duplicates).toBeGreaterThan(0)
    expect(totals.noOpApplies).toBeGreaterThan(0)
    expect(totals.drops).toBeGreaterThan(0)
    expect(totals.disconnects).toBeGreaterThan(0)
  })
})

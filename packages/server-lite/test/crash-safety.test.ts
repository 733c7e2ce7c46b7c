/**
 * Crash safety of the relay, as a user would notice it: a write the relay acknowledged is
 * never lost, whatever instant the process dies at.
 *
 * The relay runs as a child process (`bin/outpost-server.js`) on one data directory.
 * Several writers (each its own replica) send ops continuously: LWW updates to keys of
 * their own and to keys they all share, and PN-counter changes carrying their full state.
 * The relay is SIGKILLed at seeded random instants (`OUTPOST_CRASH_KILLS`, default 20),
 * restarted on the same directory (a new port), and the writers reconnect and replay
 * their unacknowledged batches, as the worker's outbox does. At the end a fresh client
 * reads every map from empty and finds exactly what was acknowledged: each field at the
 * newest acknowledged stamp (nothing missing, nothing invented) and each replica's counter
 * totals at the maximum acknowledged state. Every restart must be clean: it listens,
 * `/readyz` answers 200, and nothing is logged at error level or on stderr.
 *
 * Seeded: the seed is printed; `OUTPOST_SEED=<seed>` replays the kill schedule and every
 * writer's sequence of writes (timing, and so the interleaving, stays the machine's).
 */
import { Hlc, type Change, type CounterState, type LwwRecordState, type ReplicaId, type SerializedError, type Stamp, type Value } from '@outpost/core'
import { WebSocket } from 'ws'
import { afterEach, describe, expect, it } from 'vitest'
import { update } from './helpers/changes'
import { TestClient, tempDir } from './helpers/client'
import { spawnRelay, type RelayProcess } from './helpers/relay-process'
import { between, pick, prng, testSeed } from './helpers/seed'
import { readMap } from './helpers/snapshot'

const KILLS = Number(process.env.OUTPOST_CRASH_KILLS ?? 20)
const WRITERS = 4
const COUNTERS = ['hits0', 'hits1'] as const
const SHARED_KEYS = 6
const OWN_KEYS = 30

/** What the relay acknowledged (result `null`), reduced to what must survive. */
class Ledger {
  /** `map \0 key \0 field` → newest acknowledged register. */
  readonly fields = new Map<string, { stamp: Stamp; value: Value }>()
  /** `counter \0 replica` → largest acknowledged totals. */
  readonly counters = new Map<string, readonly [number, number]>()
  readonly rejected: SerializedError[] = []
  acked = 0

  record(changes: readonly Change[], results: readonly (SerializedError | null)[]): void {
    changes.forEach((change, i) => {
      const result = results[i]
      if (result !== null) {
        this.rejected.push(result ?? { code: 'INTERNAL', message: `no result for change ${i}` })
        return
      }
      this.acked++
      if (change.kind === 'lww') {
        for (const [name, value, stamp] of change.state.fields) {
          const id = `${change.map}\u0000${change.key}\u0000${name}`
          const known = this.fields.get(id)
          if (known === undefined || known.stamp < stamp) this.fields.set(id, { stamp, value })
        }
      } else if (change.kind === 'counter') {
        for (const [replica, inc, dec] of change.state) {
          const id = `${change.map}\u0000${replica}`
          const known = this.counters.get(id) ?? [0, 0]
          this.counters.set(id, [Math.max(known[0], inc), Math.max(known[1], dec)])
        }
      }
    })
  }
}

/** One replica writing continuously; keeps an outbox of unacknowledged batches across crashes. */
class Writer {
  readonly replicaId: string
  readonly clock: Hlc
  readonly random: () => number
  /** Batches not yet acknowledged, oldest first (replayed after a reconnect). */
  readonly outbox: Change[][] = []
  readonly totals = new Map<string, [number, number]>()
  batches = 0
  replayed = 0
  #seq = 0

  constructor(index: number, seed: number) {
    this.replicaId = `crash-w${index}-${seed}`
    // Kept across connections, so a reconnect never reuses a stamp with a different value.
    this.clock = new Hlc({ replicaId: this.replicaId as ReplicaId })
    this.random = prng(seed + 1000 * (index + 1))
  }

  #value(): string {
    const tag = `${this.replicaId}#${++this.#seq}`
    // A few large values make some commits span more pages.
    return this.random() < 0.1 ? tag + 'x'.repeat(between(this.random, 500, 4000)) : tag
  }

  #patch(): Record<string, Value> {
    const patch: Record<string, Value> = {}
    const count = between(this.random, 1, 2)
    for (let i = 0; i < count; i++) patch[`f${between(this.random, 0, 3)}`] = this.#value()
    return patch
  }

  newBatch(): Change[] {
    const changes: Change[] = []
    const size = between(this.random, 1, 6)
    for (let i = 0; i < size; i++) {
      const roll = this.random()
      if (roll < 0.45) {
        changes.push(update(this.clock, 'own', `${this.replicaId}-k${between(this.random, 0, OWN_KEYS - 1)}`, this.#patch()))
      } else if (roll < 0.8) {
        changes.push(update(this.clock, 'shared', `s${between(this.random, 0, SHARED_KEYS - 1)}`, this.#patch()))
      } else {
        const counter = pick(this.random, COUNTERS)
        const totals = this.totals.get(counter) ?? [0, 0]
        if (this.random() < 0.7) totals[0] += between(this.random, 1, 5)
        else totals[1] += between(this.random, 1, 3)
        this.totals.set(counter, totals)
        // A counter change carries the replica's whole state: replaying it never double-counts.
        const state: CounterState = [[this.replicaId as ReplicaId, totals[0], totals[1]]]
        changes.push({ kind: 'counter', map: counter, key: '', state })
      }
    }
    return changes
  }

  /**
   * Connects, replays the outbox, then (unless `replayOnly`) keeps writing until the socket
   * dies. Failures are swallowed only while `relayDead()` says the relay was killed.
   */
  async run(url: string, ledger: Ledger, relayDead: () => boolean, replayOnly: boolean): Promise<void> {
    let client: TestClient | undefined
    let replaying = this.outbox.length
    try {
      client = (await TestClient.connect(url, { replicaId: this.replicaId })).client
      for (;;) {
        let batch = this.outbox[0]
        if (batch === undefined) {
          if (replayOnly) return
          batch = this.newBatch()
          this.outbox.push(batch)
          this.batches++
        }
        const ack = await client.ops(batch)
        ledger.record(batch, ack.results)
        this.outbox.shift()
        if (replaying > 0) {
          replaying--
          this.replayed++
        }
      }
    } catch (error) {
      const socketGone = client === undefined || client.ws.readyState === WebSocket.CLOSED || client.ws.readyState === WebSocket.CLOSING
      if (!(relayDead() && socketGone)) throw error
    } finally {
      if (client !== undefined && replayOnly) await client.close()
    }
  }
}

async function readyz(relay: RelayProcess): Promise<number> {
  return (await fetch(`${relay.httpUrl}/readyz`)).status
}

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

describe('relay crash safety (SIGKILL at random instants)', () => {
  it(`keeps every acknowledged write across ${KILLS} kills and restarts cleanly each time`, { timeout: 420_000 }, async () => {
    const seed = testSeed()
    console.log(`crash-safety: seed ${seed}, ${KILLS} kills (replay with OUTPOST_SEED=${seed}; OUTPOST_CRASH_KILLS sets the count)`)
    const began = Date.now()
    const dir = tempDir('outpost-crash-')
    cleanups.push(() => dir.remove())
    const schedule = prng(seed)
    const ledger = new Ledger()
    const writers = Array.from({ length: WRITERS }, (_, i) => new Writer(i, seed))
    const startTimes: number[] = []
    const windows: number[] = []
    let relay: RelayProcess | undefined
    cleanups.push(() => {
      if (relay !== undefined && relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill('SIGKILL')
    })

    try {
      for (let kill = 1; kill <= KILLS; kill++) {
        relay = await spawnRelay(dir.path)
        const current = relay
        startTimes.push(current.startMs)
        expect(await readyz(current), `restart ${kill}: /readyz`).toBe(200)
        let dead = false
        // Settled, not rejected, so a writer failing early is reported here rather than as an unhandled rejection.
        const running = writers.map((writer) => writer.run(current.url, ledger, () => dead, false).then(() => undefined, (error: unknown) => error))
        // Mostly mid-stream; sometimes right after the restart, while writers reconnect and replay.
        const window = schedule() < 0.2 ? between(schedule, 0, 100) : between(schedule, 100, 1500)
        windows.push(window)
        await new Promise((resolve) => setTimeout(resolve, window))
        expect(current.child.exitCode, `restart ${kill}: relay died on its own: ${current.stderr()}`).toBeNull()
        dead = true
        current.child.kill('SIGKILL')
        const exit = await current.exited
        expect(exit.signal).toBe('SIGKILL')
        for (const failure of await Promise.all(running)) if (failure !== undefined) throw failure
        expect(current.problems(), `restart ${kill}: error logs`).toEqual([])
        expect(current.stderr(), `restart ${kill}: stderr`).toBe('')
      }

      // Last start: everyone replays what is still unacknowledged, then a fresh client reads it all.
      relay = await spawnRelay(dir.path)
      const last = relay
      startTimes.push(last.startMs)
      expect(await readyz(last)).toBe(200)
      await Promise.all(writers.map((writer) => writer.run(last.url, ledger, () => false, true)))
      for (const writer of writers) expect(writer.outbox).toEqual([])

      const { client: reader } = await TestClient.connect(last.url, { replicaId: `crash-reader-${seed}` })
      const missing: string[] = []
      const invented: string[] = []
      for (const map of ['own', 'shared']) {
        const records = await readMap(reader, map)
        for (const [id, want] of ledger.fields) {
          const [m, key, field] = id.split('\u0000') as [string, string, string]
          if (m !== map) continue
          const state = records.get(key)?.state as LwwRecordState | undefined
          const got = state?.fields.find(([name]) => name === field)
          if (got === undefined || got[2] !== want.stamp || got[1] !== want.value) {
            missing.push(`${map}/${key}.${field}: acked ${want.stamp}, found ${got === undefined ? 'nothing' : got[2]}`)
          }
        }
        for (const [key, change] of records) {
          for (const [name, , stamp] of (change.state as LwwRecordState).fields) {
            if (ledger.fields.get(`${map}\u0000${key}\u0000${name}`)?.stamp !== stamp) invented.push(`${map}/${key}.${name}@${stamp}`)
          }
        }
      }
      for (const counter of COUNTERS) {
        const state = ((await readMap(reader, counter)).get('')?.state ?? []) as CounterState
        for (const writer of writers) {
          const acked = ledger.counters.get(`${counter}\u0000${writer.replicaId}`) ?? [0, 0]
          const stored = state.find(([replica]) => replica === writer.replicaId)
          // Every batch ended up acknowledged, so the newest local state is the largest acked one.
          expect(acked).toEqual(writer.totals.get(counter) ?? [0, 0])
          if (stored?.[1] !== acked[0] || stored[2] !== acked[1]) missing.push(`${counter}/${writer.replicaId}: acked ${JSON.stringify(acked)}, found ${JSON.stringify(stored)}`)
        }
      }
      await reader.close()

      const elapsed = Date.now() - began
      const sorted = [...startTimes].sort((a, b) => a - b)
      console.log(
        `crash-safety: seed ${seed}: ${KILLS} kills, ${ledger.acked} acked changes in ${writers.reduce((n, w) => n + w.batches, 0)} batches ` +
          `(${writers.reduce((n, w) => n + w.replayed, 0)} replayed after a crash), ${ledger.fields.size} LWW registers, ` +
          `restart ms min/median/max ${sorted[0]}/${sorted[Math.floor(sorted.length / 2)]}/${sorted[sorted.length - 1]}, ` +
          `kill windows ${windows.join(',')} ms, total ${elapsed} ms`,
      )
      expect(missing, `seed ${seed}: acknowledged writes lost`).toEqual([])
      expect(invented, `seed ${seed}: fields nobody acknowledged`).toEqual([])
      expect(ledger.rejected, `seed ${seed}: writes refused`).toEqual([])
      expect(ledger.acked).toBeGreaterThan(KILLS * 10)

      // After all those crashes the relay still drains cleanly.
      last.child.kill('SIGTERM')
      expect((await last.exited).code).toBe(0)
      expect(last.problems()).toEqual([])
    } catch (error) {
      console.error(`crash-safety failed; replay with OUTPOST_SEED=${seed}`)
      throw error
    }
  })
})

/**
 * One seed of N1 (see n1-faults.test.ts): SDK devices (whole-map and shape-only, some with
 * skewed clocks) write at random through a fault proxy to a relay process that gets
 * SIGKILLed and restarted; devices go offline and come back, and are closed and reopened
 * on their own IndexedDB. Then everything heals and the seed asks:
 *
 * 1. does every device settle (live, nothing pending, nothing refused)?
 * 2. does every device hold exactly the relay's data — a whole-map device the whole map,
 *    a shape-only device the relay's data filtered by its shape — and every counter the
 *    relay's value?
 * 3. is every counter exact: the sum of every increment that committed locally (each
 *    one must reach the relay exactly once, whether or not its `persisted` ever resolved)?
 * 4. does the relay's LMDB, read directly after a clean stop, hold what it served?
 *    ({@link checkStore}, once for every seed at the end of a run.)
 *
 * Seeds share one relay process (each writes its own map and counters): a relay start
 * costs seconds on a loaded machine, and a relay that has lived through earlier seeds,
 * kills included, is a harder test than a fresh one.
 *
 * Everything the schedule does is drawn from `prng(seed)`; the proxy and each device's
 * backoff jitter draw from their own streams, so frame timing never shifts the schedule.
 */
import { LmdbStore } from '@outpost/server-lite'
import { prng } from '@outpost/core/testing'
import { decode, type Change, type RecordValue, type Shape } from '@outpost/core'
import { setTimeout as sleep } from 'node:timers/promises'
import { NO_FAULTS, startFaultProxy, type FaultCounts, type FaultRates } from './fault-proxy'
import { RawClient } from './raw-client'
import type { RelayProcess } from './relay-process'
import { isSettled, openDevice, type Device } from './sdk-device'
import { COUNTERS, canonical, countersView, differences, recordsView, shapeView } from './views'

/** The knobs of one seed. */
export interface FaultSeedParams {
  /** Devices that replicate the whole map. */
  readonly wholeMapDevices: number
  /** Devices that replicate only a filtered shape of it. */
  readonly shapeDevices: number
  /** Scheduled steps (writes, offline windows, restarts, fault changes, pauses). */
  readonly steps: number
  /** Most relay SIGKILLs per seed. */
  readonly maxKills: number
  /** Chance that a step SIGKILLs the relay (while kills are left). */
  readonly killChance: number
  /**
   * How long, after healing, the devices may take to converge on their own connections
   * (ms). A device still stale then is recorded (see `staleUntilReconnect`), every
   * connection is reset, and the devices get `convergeMs` more.
   */
  readonly staleMs: number
  /** How long, after healing, the devices may take to converge (ms). */
  readonly convergeMs: number
}

/** What one seed saw. */
export interface FaultSeedOutcome {
  readonly seed: number
  /** What diverged or failed (empty when passed). */
  readonly problems: string[]
  /**
   * Devices that were live and idle but still differed from the relay `staleMs` after
   * healing, and converged only once their connection was reset (a frame lost inside a
   * live connection is never re-sent; see the README). Empty when none.
   */
  readonly staleUntilReconnect: string[]
  readonly writes: number
  readonly increments: { readonly committed: number; readonly persisted: number; readonly neverPersisted: number; readonly refused: number }
  readonly kills: number
  readonly deviceRestarts: number
  readonly offlineWindows: number
  readonly maxSkewMs: number
  readonly faults: FaultCounts
  /** Time from healing to every device equal to the relay (ms). */
  readonly convergedMs: number | null
  readonly elapsedMs: number
  /** What the relay served at the end (for {@link checkStore}); absent when the seed did not converge. */
  readonly served?: Served
}

/** A seed's map and counters as the relay served them. */
export interface Served {
  readonly map: string
  readonly counterNames: readonly string[]
  readonly records: Map<string, Change>
  readonly counters: Map<string, Change>
}

const KEYS = Array.from({ length: 12 }, (_, i) => `k${i}`)
const COLORS = ['red', 'blue', 'green'] as const

/** The shapes shape-only devices take, in turn: equality, `in`, a projection, a range. */
function shapesOf(map: string): Shape[] {
  return [
    { map, where: { eq: ['color', 'red'] } },
    { map, where: { in: ['color', ['red', 'blue']] } },
    { map, where: { eq: ['color', 'blue'] }, fields: ['color', 'n'] },
    { map, where: { gte: ['n', 5] } },
  ]
}

function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T
}

/** A device and what the scenario keeps about it. */
interface Member {
  readonly device: Device
  /** Undefined: the whole map. */
  readonly shape: Shape | undefined
  offlineUntilStep: number | undefined
  /** Local write handles not yet settled (awaited before the device is restarted). */
  readonly inFlight: Set<PromiseLike<void>>
  stop: (() => void)[]
}

/** The names one seed writes to: its own map and counters, so seeds can share one relay. */
interface Names {
  readonly map: string
  readonly counters: readonly string[]
}

/** Keeps the device's subscriptions open: its map or shape, and every counter. */
function attach(member: Member, names: Names): void {
  const client = member.device.client
  if (member.shape === undefined) client.sync(names.map)
  else client.shape(member.shape)
  member.stop = names.counters.map((name) => client.counter(name).subscribe(() => {}))
}

/** A record a device may write: a shape-only device writes records its shape selects. */
function makeRecord(random: () => number, member: Member): RecordValue {
  const where = JSON.stringify(member.shape?.where ?? null)
  let color: string = pick(random, COLORS)
  if (where.includes('"red"')) color = 'red'
  else if (where.includes('"blue"')) color = 'blue'
  const n = where.includes('gte') ? between(random, 5, 9) : between(random, 0, 9)
  // A device with a projection writes only the fields it holds (see the README: fields it
  // wrote outside its projection would stay on the device, never refreshed).
  return member.shape?.fields === undefined ? { color, n, by: member.device.name } : { color, n }
}

function drawFaults(random: () => number): FaultRates {
  if (random() < 0.25) return NO_FAULTS
  return {
    drop: random() * 0.04,
    duplicate: random() * 0.05,
    reorder: random() * 0.05,
    delay: random() * 0.1,
    maxDelayMs: 200,
    reset: random() * 0.01,
    blackhole: random() * 0.01,
  }
}

/**
 * Runs one seed against `relay` (which it may kill and restart, and leaves running);
 * never throws for a divergence (it is reported in `problems`).
 */
export async function runFaultSeed(seed: number, params: FaultSeedParams, relay: RelayProcess): Promise<FaultSeedOutcome> {
  const started = Date.now()
  const random = prng(seed)
  const phases: string[] = []
  let phaseAt = Date.now()
  const phase = (name: string): void => {
    phases.push(`${name} ${Date.now() - phaseAt}`)
    phaseAt = Date.now()
  }
  const names: Names = { map: `n1-${seed}`, counters: [0, 1, 2].map((i) => `n1-${seed}-c${i}`) }
  const shapes = shapesOf(names.map)
  const problems: string[] = []
  const proxy = await startFaultProxy(relay.url, prng(seed ^ 0x9e3779b9), (fault, direction, frame) => {
    if (process.env['OUTPOST_N1_FAULTS'] === '1') console.log(`[N1] seed=${seed} ${fault} ${direction}: ${describeFrame(frame as Buffer)}`)
  })
  const members: Member[] = []
  let relayDown: { until: number } | undefined
  let restarting: Promise<void> | undefined
  let kills = 0
  let deviceRestarts = 0
  let offlineWindows = 0
  let writes = 0
  let maxSkewMs = 0
  const increments = { committed: 0, persisted: 0, neverPersisted: 0, refused: 0 }
  const expectedCounters = new Map<string, number>(names.counters.map((name) => [name, 0]))
  const persistWatch: Promise<void>[] = []
  let convergedMs: number | null = null
  let served: Served | undefined
  const staleUntilReconnect: string[] = []
  try {
    const total = params.wholeMapDevices + params.shapeDevices
    for (let i = 0; i < total; i++) {
      const skewMs = random() < 0.6 ? Math.round((random() * 2 - 1) * 300_000) : 0
      maxSkewMs = Math.max(maxSkewMs, Math.abs(skewMs))
      const shape = i < params.wholeMapDevices ? undefined : shapes[(i - params.wholeMapDevices) % shapes.length]
      const device = openDevice({ name: `n1-${seed}-d${i}`, url: proxy.url, skewMs, random: prng(seed + i + 1) })
      const member: Member = { device, shape, offlineUntilStep: undefined, inFlight: new Set(), stop: [] }
      attach(member, names)
      members.push(member)
    }
    await Promise.all(members.map((m) => m.device.client.ready()))
    phase('devices')

    const track = (member: Member, handle: PromiseLike<void>): void => {
      member.inFlight.add(handle)
      const done = (): void => {
        member.inFlight.delete(handle)
      }
      handle.then(done, (error: unknown) => {
        done()
        problems.push(`${member.device.name}: a local write failed: ${String(error)}`)
      })
    }

    const write = (member: Member): void => {
      const client = member.device.client
      const roll = random()
      writes++
      if (roll < (member.shape === undefined ? 0.25 : 0.5)) {
        const name = pick(random, names.counters)
        const delta = (random() < 0.7 ? 1 : -1) * between(random, 1, 5)
        const handle = delta > 0 ? client.counter(name).increment(delta) : client.counter(name).decrement(-delta)
        track(member, handle)
        // Counted once durable locally: from then on the outbox owes it to the relay, restart or not.
        handle.then(
          () => {
            increments.committed++
            expectedCounters.set(name, (expectedCounters.get(name) ?? 0) + delta)
            // A handle whose device was closed before the relay answered never settles; counted at the end.
            persistWatch.push(
              handle.persisted.then(
                () => {
                  increments.persisted++
                },
                () => {
                  increments.refused++
                },
              ),
            )
          },
          () => {},
        )
        return
      }
      const map = client.map(names.map)
      const key = pick(random, KEYS)
      if (member.shape !== undefined || roll < 0.6) {
        track(member, map.set(key, makeRecord(random, member)))
      } else if (roll < 0.88) {
        const record = makeRecord(random, member)
        track(member, map.update(key, random() < 0.5 ? { n: record['n'] } : { color: record['color'], by: member.device.name }))
      } else {
        track(member, map.delete(key))
      }
    }

    for (let step = 0; step < params.steps; step++) {
      for (const member of members) {
        if (member.offlineUntilStep !== undefined && step >= member.offlineUntilStep) {
          member.offlineUntilStep = undefined
          await member.device.client.setOffline(false)
        }
      }
      if (relayDown !== undefined && step >= relayDown.until && restarting === undefined) {
        // Restarted in the background: devices keep writing while it starts.
        restarting = relay.restart().finally(() => {
          relayDown = undefined
          restarting = undefined
        })
      }
      const roll = random()
      if (roll < 0.62) {
        write(pick(random, members))
      } else if (roll < 0.7) {
        const member = pick(random, members)
        if (member.offlineUntilStep === undefined && members.filter((m) => m.offlineUntilStep !== undefined).length < members.length / 2) {
          member.offlineUntilStep = step + between(random, 3, 12)
          offlineWindows++
          await member.device.client.setOffline(true)
        }
      } else if (roll < 0.74) {
        // A second draw decides whether this step kills the relay, so `killChance` tunes kills alone.
        if (random() < params.killChance / 0.04 && relayDown === undefined && kills < params.maxKills) {
          kills++
          relayDown = { until: step + between(random, 1, 8) }
          await relay.kill()
        }
      } else if (roll < 0.77) {
        const member = pick(random, members)
        // Wait for its local writes, so every write counted as committed really is.
        await Promise.allSettled([...member.inFlight])
        for (const stop of member.stop) stop()
        deviceRestarts++
        await member.device.restart()
        attach(member, names)
      } else if (roll < 0.86) {
        proxy.setFaults(drawFaults(random))
      } else {
        await sleep(between(random, 20, 150))
      }
      await sleep(between(random, 5, 30))
    }
    phase('steps')

    // Heal: faults off, relay up, every device online.
    proxy.heal()
    if (restarting !== undefined) await restarting
    if (relayDown !== undefined) {
      await relay.restart()
      relayDown = undefined
    }
    for (const member of members) {
      if (member.offlineUntilStep !== undefined) {
        member.offlineUntilStep = undefined
        await member.device.client.setOffline(false)
      }
    }
    for (const member of members) await Promise.allSettled([...member.inFlight])
    const healedAt = Date.now()
    phase('heal')

    const observer = await RawClient.connect(relay.url, `n1-observer-${seed}`)
    try {
      let lastReport: string[] = []
      let resetAt: number | undefined
      for (;;) {
        const now = await readServed(observer, names)
        lastReport = await compare(members, names, now, expectedCounters)
        if (lastReport.length === 0) {
          convergedMs = Date.now() - healedAt
          served = now
          break
        }
        if (resetAt === undefined && Date.now() - healedAt > params.staleMs) {
          // Settled devices that still differ will not repair themselves on this connection.
          staleUntilReconnect.push(...lastReport)
          proxy.resetAll()
          resetAt = Date.now()
        }
        if (resetAt !== undefined && Date.now() - resetAt > params.convergeMs) break
        await sleep(250)
      }
      phase('converge')
      if (convergedMs === null) problems.push(`not converged ${params.staleMs} ms after healing, nor ${params.convergeMs} ms after resetting every connection:`, ...lastReport)
      // Increments whose handle never settled: their device was closed first. They were
      // still owed by the outbox, so the counter check above includes them.
      await Promise.race([Promise.allSettled(persistWatch), sleep(2_000)])
      increments.neverPersisted = increments.committed - increments.persisted - increments.refused
      if (increments.refused > 0) problems.push(`${increments.refused} counter increments were refused by the relay`)
    } finally {
      await observer.close()
    }
  } catch (error) {
    problems.push(`scenario error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  } finally {
    for (const member of members) for (const stop of member.stop) stop()
    await Promise.allSettled(members.map((m) => m.device.close()))
    await proxy.close()
    // A seed that failed mid-way may leave the relay down; the next seed needs it.
    if (restarting !== undefined) await restarting.catch(() => {})
    if (relayDown !== undefined) await relay.restart()
    phase('teardown')
    if (process.env['OUTPOST_N1_PHASES'] === '1') console.log(`[N1] seed=${seed} phases (ms): ${phases.join(', ')}`)
  }
  return {
    seed,
    problems,
    staleUntilReconnect,
    writes,
    increments,
    kills,
    deviceRestarts,
    offlineWindows,
    maxSkewMs,
    faults: { ...proxy.counts },
    convergedMs,
    elapsedMs: Date.now() - started,
    ...(served === undefined ? {} : { served }),
  }
}

/** A frame as readable text, for fault logs. */
function describeFrame(frame: Buffer): string {
  try {
    return JSON.stringify(decode(new Uint8Array(frame.buffer, frame.byteOffset, frame.length))).slice(0, 160)
  } catch {
    return `(${frame.length} bytes)`
  }
}

/** The seed's map and counters as the relay serves them to a device syncing from empty. */
async function readServed(observer: RawClient, names: Names): Promise<Served> {
  const counters = await observer.readMap(COUNTERS)
  for (const key of [...counters.keys()]) if (!names.counters.includes(key)) counters.delete(key)
  return { map: names.map, counterNames: names.counters, records: await observer.readMap(names.map), counters }
}

/** Every way a device differs from the relay right now (empty: all equal and settled). */
async function compare(members: readonly Member[], names: Names, served: Served, expectedCounters: ReadonlyMap<string, number>): Promise<string[]> {
  const lines: string[] = []
  const relayRecords = recordsView(served.records)
  const relayCounters = countersView(served.counters)
  for (const [name, expected] of expectedCounters) {
    const got = relayCounters.get(name) ?? 0
    if (got !== expected) lines.push(`relay counter ${name} = ${got}, expected ${expected} (the sum of every committed increment)`)
  }
  for (const member of members) {
    const client = member.device.client
    const status = client.status.get()
    const name = `${member.device.name}${member.shape === undefined ? '' : ` (shape ${canonical(member.shape)})`} skew ${member.device.skewMs} ms`
    if (!isSettled(status)) lines.push(`${name}: not settled (connection ${status.connection}, ${status.pendingWrites} pending, last error ${status.lastError?.code ?? 'none'})`)
    if (status.rejected.count > 0) lines.push(`${name}: ${status.rejected.count} writes refused by the relay (${status.rejected.lastError?.code ?? '?'})`)
    const rows = await client.map(names.map).query().get()
    const local = new Map(rows.map((row) => [row.key, row.value as RecordValue]))
    const expected = member.shape === undefined ? relayRecords : shapeView(relayRecords, member.shape)
    for (const diff of differences(local, expected)) {
      // For a shape, say what the relay's whole record is (deleted, or moved out of the shape).
      const key = diff.slice(0, diff.indexOf(':'))
      const whole = served.records.get(key)
      const why = member.shape === undefined || whole === undefined ? '' : ` [relay record: ${canonical(whole.state)}]`
      lines.push(`${name}: ${diff}${why}`)
    }
    for (const counter of names.counters) {
      const got = await client.counter(counter).get()
      const want = relayCounters.get(counter) ?? 0
      if (got !== want) lines.push(`${name}: counter ${counter} = ${got}, relay ${want}`)
    }
  }
  return lines
}

/**
 * Compares what the relay served for each seed with what its LMDB holds, read directly
 * (stop the relay first: this opens its data directory). Returns problems by seed.
 */
export async function checkStore(dataDir: string, seeds: readonly { readonly seed: number; readonly served?: Served }[]): Promise<Map<number, string[]>> {
  const store = LmdbStore.open({ path: dataDir })
  const out = new Map<number, string[]>()
  try {
    const read = async (map: string): Promise<Map<string, Change>> => {
      const records = new Map<string, Change>()
      const info = await store.mapInfo(map)
      if (info === undefined) return records
      let after: string | undefined
      for (;;) {
        const page = await store.scanRecords(map, { limit: 1_000, ...(after === undefined ? {} : { after }) })
        for (const record of page) records.set(record.key, { kind: info.kind, map, key: record.key, state: record.state } as Change)
        if (page.length < 1_000) break
        after = page.at(-1)?.key
      }
      return records
    }
    const allCounters = await read(COUNTERS)
    for (const { seed, served } of seeds) {
      if (served === undefined) continue
      const lines: string[] = []
      for (const diff of differences(recordsView(await read(served.map)), recordsView(served.records))) lines.push(`LMDB vs served ${served.map}: ${diff}`)
      const counters = new Map([...allCounters].filter(([key]) => served.counterNames.includes(key)))
      for (const diff of differences(countersView(counters), countersView(served.counters))) lines.push(`LMDB vs served counters: ${diff}`)
      if (lines.length > 0) out.set(seed, lines)
    }
    return out
  } finally {
    await store.close()
  }
}

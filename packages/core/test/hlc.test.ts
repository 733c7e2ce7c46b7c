/**
 * The hybrid logical clock.
 *
 * Laws (properties, seeded: OUTPOST_SEED replays, OUTPOST_PROPERTY_RUNS sets the runs):
 *  - stamps a clock issues strictly increase, whatever its wall clock does (stalls, jumps back);
 *  - after `receive(s)` every stamp the clock issues is greater than `s`;
 *  - encode/decode round-trip, and `a < b` on encoded stamps iff (wall, counter, replica) tuple order.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ClockDriftError, InvalidValueError } from '../src/errors'
import { Hlc, MAX_COUNTER, MAX_WALL, compareStamps, decodeStamp, encodeStamp, isStamp, maxStamp } from '../src/clock'
import type { ReplicaId, Stamp } from '../src/types'

const SEED = process.env['OUTPOST_SEED'] !== undefined ? Number(process.env['OUTPOST_SEED']) : Math.floor(Math.random() * 2 ** 31)
const RUNS = Math.max(1, Number(process.env['OUTPOST_PROPERTY_RUNS'] ?? 10_000))

/** Runs a property with the file's seed; a failure message names the seed to replay with. */
function check<T>(property: fc.IAsyncProperty<T> | fc.IProperty<T>): void {
  const result = fc.check(property as fc.IProperty<T>, { seed: SEED, numRuns: RUNS }) as fc.RunDetails<T>
  if (result.failed) {
    throw new Error(`property failed; replay with OUTPOST_SEED=${SEED}\n${fc.defaultReportMessage(result)}\n${String(result.errorInstance)}`)
  }
}

const rid = (s: string): ReplicaId => s as ReplicaId
const Y9999 = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

describe('stamp encoding', () => {
  it('stays fixed-width up to year 9999 and round-trips', () => {
    const low = encodeStamp({ wall: 0, counter: 0, replica: rid('r') })
    const high = encodeStamp({ wall: Y9999, counter: MAX_COUNTER, replica: rid('r') })
    expect(low.length).toBe(high.length)
    expect(decodeStamp(high)).toEqual({ wall: Y9999, counter: MAX_COUNTER, replica: 'r' })
    expect(MAX_WALL).toBeGreaterThan(Y9999)
  })

  it('round-trips and preserves tuple order (property)', () => {
    const parts = fc.record({
      wall: fc.oneof(fc.integer({ min: 0, max: Y9999 }), fc.constantFrom(0, 1, 35, 36, Y9999)),
      counter: fc.oneof(fc.integer({ min: 0, max: MAX_COUNTER }), fc.constantFrom(0, 15, 16, MAX_COUNTER)),
      replica: fc.oneof(fc.constantFrom('a', 'ab', 'b', 'A', 'z-9', '-', '0'), fc.string({ minLength: 1, maxLength: 12 })).map(rid),
    })
    check(
      fc.property(parts, parts, (a, b) => {
        const sa = encodeStamp(a)
        const sb = encodeStamp(b)
        expect(decodeStamp(sa)).toEqual(a)
        const tuple = a.wall !== b.wall ? Math.sign(a.wall - b.wall) : a.counter !== b.counter ? Math.sign(a.counter - b.counter) : a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0
        expect(compareStamps(sa, sb)).toBe(tuple)
        expect(sa < sb).toBe(tuple < 0)
      }),
    )
  })

  it('rejects malformed wire stamps with InvalidValueError', () => {
    const good = encodeStamp({ wall: 1_700_000_000_000, counter: 3, replica: rid('r1') })
    const bad: unknown[] = [
      '',
      42,
      null,
      good.toUpperCase(),
      good.slice(0, 16), // no replica
      `0${good}`, // wall too wide
      good.replace('-0003-', '-003-'),
      good.replace('-0003-', '-10000-'), // counter out of range cannot be encoded
      `${good.slice(0, 16)}${'x'.repeat(129)}`,
    ]
    for (const stamp of bad) {
      expect(() => decodeStamp(stamp), String(stamp)).toThrow(InvalidValueError)
      expect(isStamp(stamp)).toBe(false)
    }
    expect(isStamp(good)).toBe(true)
    expect(() => encodeStamp({ wall: -1, counter: 0, replica: rid('r') })).toThrow(InvalidValueError)
    expect(() => encodeStamp({ wall: 1.5, counter: 0, replica: rid('r') })).toThrow(InvalidValueError)
    expect(() => encodeStamp({ wall: 1, counter: MAX_COUNTER + 1, replica: rid('r') })).toThrow(InvalidValueError)
    expect(() => encodeStamp({ wall: 1, counter: 0, replica: rid('') })).toThrow(InvalidValueError)
  })

  it('maxStamp treats null as "no stamp"', () => {
    const a = encodeStamp({ wall: 1, counter: 0, replica: rid('a') })
    const b = encodeStamp({ wall: 1, counter: 0, replica: rid('b') })
    expect(maxStamp(null, null)).toBeNull()
    expect(maxStamp(a, null)).toBe(a)
    expect(maxStamp(null, b)).toBe(b)
    expect(maxStamp(a, b)).toBe(b)
    expect(maxStamp(b, a)).toBe(b)
  })
})

describe('Hlc', () => {
  it('follows the wall clock when it moves forward', () => {
    let t = 1_000
    const clock = new Hlc({ replicaId: rid('r'), now: () => t })
    expect(decodeStamp(clock.tick())).toEqual({ wall: 1_000, counter: 0, replica: 'r' })
    expect(decodeStamp(clock.tick())).toEqual({ wall: 1_000, counter: 1, replica: 'r' })
    t = 2_000
    expect(decodeStamp(clock.tick())).toEqual({ wall: 2_000, counter: 0, replica: 'r' })
    expect(clock.last).toBe(encodeStamp({ wall: 2_000, counter: 0, replica: rid('r') }))
  })

  it('stays monotonic across backward jumps and merged remote stamps (property)', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('time' as const), jump: fc.integer({ min: -100_000, max: 100_000 }) }),
      fc.record({ kind: fc.constant('tick' as const) }),
      fc.record({ kind: fc.constant('receive' as const), ahead: fc.integer({ min: -100_000, max: 60_000 }), counter: fc.integer({ min: 0, max: MAX_COUNTER }) }),
    )
    check(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        let t = 1_700_000_000_000
        const clock = new Hlc({ replicaId: rid('me'), now: () => t })
        let last: Stamp | null = null
        for (const s of steps) {
          if (s.kind === 'time') {
            t += s.jump
            continue
          }
          let floor: Stamp | null = last
          if (s.kind === 'receive') {
            const remote = encodeStamp({ wall: t + s.ahead, counter: s.counter, replica: rid('other') })
            floor = maxStamp(floor, remote)
            const merged = clock.receive(remote)
            expect(merged > (floor as Stamp)).toBe(true)
            last = merged
          }
          const stamp = clock.tick()
          if (floor !== null) expect(stamp > floor, `${stamp} after ${floor}`).toBe(true)
          if (last !== null) expect(stamp > last).toBe(true)
          last = stamp
          expect(clock.last).toBe(stamp)
        }
      }),
    )
  })

  it('rejects a remote stamp too far ahead with ClockDriftError carrying its own time', () => {
    const t = 1_700_000_000_000
    const clock = new Hlc({ replicaId: rid('me'), now: () => t, maxDrift: 60_000 })
    const ok = encodeStamp({ wall: t + 60_000, counter: 0, replica: rid('you') })
    const tooFar = encodeStamp({ wall: t + 60_001, counter: 0, replica: rid('you') })
    expect(() => clock.checkRemote(ok)).not.toThrow()
    const before = clock.last
    let caught: unknown
    try {
      clock.receive(tooFar)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(ClockDriftError)
    expect((caught as ClockDriftError).receiverTime).toBe(t)
    expect((caught as ClockDriftError).code).toBe('CLOCK_DRIFT')
    // A rejected stamp leaves the clock untouched.
    expect(clock.last).toBe(before)
    expect(() => clock.checkRemote(tooFar)).toThrow(ClockDriftError)
    expect(() => clock.receive('garbage' as Stamp)).toThrow(InvalidValueError)
    // Accepting the stamp at the limit moves the clock past it.
    expect(clock.receive(ok) > ok).toBe(true)
  })

  it('lets an honest client with a wrong clock correct itself through the offset', () => {
    const relayTime = 1_700_000_000_000
    const relay = new Hlc({ replicaId: rid('relay'), now: () => relayTime })
    const client = new Hlc({ replicaId: rid('client'), now: () => relayTime + 10 * 60_000 }) // 10 min fast
    const stamp = client.tick()
    let receiverTime = 0
    try {
      relay.receive(stamp)
    } catch (error) {
      expect(error).toBeInstanceOf(ClockDriftError)
      receiverTime = (error as ClockDriftError).receiverTime
    }
    expect(receiverTime).toBe(relayTime)
    client.offset = receiverTime - (relayTime + 10 * 60_000)
    expect(client.offset).toBe(-10 * 60_000)
    expect(client.physicalNow()).toBe(relayTime)
    // A clock started with the corrected offset issues stamps the relay accepts.
    const corrected = new Hlc({ replicaId: rid('client'), now: () => relayTime + 10 * 60_000, offset: receiverTime - (relayTime + 10 * 60_000) })
    expect(() => relay.receive(corrected.tick())).not.toThrow()
    // HLC never goes back: the fast clock keeps its issued stamp as a floor until real time passes it.
    expect(decodeStamp(client.tick()).wall).toBe(relayTime + 10 * 60_000)
    expect(() => (client.offset = Number.NaN)).toThrow(InvalidValueError)
  })

  it('advances the wall by 1 ms instead of overflowing the counter', () => {
    const t = 5_000
    const clock = new Hlc({ replicaId: rid('r'), now: () => t })
    let stamp = clock.tick()
    for (let i = 0; i < MAX_COUNTER; i++) stamp = clock.tick()
    expect(decodeStamp(stamp)).toEqual({ wall: t, counter: MAX_COUNTER, replica: 'r' })
    const next = clock.tick()
    expect(decodeStamp(next)).toEqual({ wall: t + 1, counter: 0, replica: 'r' })
    expect(next > stamp).toBe(true)
    // The same holds when a received stamp is at the counter limit.
    const other = new Hlc({ replicaId: rid('s'), now: () => t })
    const merged = other.receive(encodeStamp({ wall: t + 10, counter: MAX_COUNTER, replica: rid('r') }))
    expect(decodeStamp(merged)).toEqual({ wall: t + 11, counter: 0, replica: 's' })
  })

  it('resumes after a restart from its last stamp even if the wall clock went back', () => {
    const first = new Hlc({ replicaId: rid('r'), now: () => 10_000 })
    const before = first.tick()
    const restarted = new Hlc({ replicaId: rid('r'), now: () => 9_000, last: before })
    expect(restarted.tick() > before).toBe(true)
    expect(() => new Hlc({ replicaId: rid('') })).toThrow(InvalidValueError)
  })
})

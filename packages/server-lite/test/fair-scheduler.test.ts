/**
 * The fair scheduler on its own (no sockets, no store): the order in which lanes are
 * served, heavy steps paid for with credit, the in-flight window, and the byte budget that
 * pauses and resumes a lane. Ticks are run by hand (an injected `defer`), so every test is
 * about order and counts, never time.
 */
import { describe, expect, it } from 'vitest'
import { FairScheduler, type Lane, type StepCost, type TrackInFlight, type Work } from '../src/fair-scheduler'

/** A scheduler whose ticks run only when the test calls `tick()`. */
function manual(options: { pieceUnits?: number; tickUnits?: number; laneWindow?: number } = {}) {
  const pending: (() => void)[] = []
  const scheduler = new FairScheduler({ ...options, defer: (run) => pending.push(run) })
  /** Runs the ticks scheduled so far; returns how many ran. */
  const tick = (): number => {
    const now = pending.splice(0)
    for (const run of now) run()
    return now.length
  }
  /** Ticks until nothing is scheduled (bounded). */
  const drain = (): void => {
    for (let i = 0; i < 1_000 && pending.length > 0; i++) tick()
  }
  return { scheduler, tick, drain }
}

/** Work of fixed steps that logs `name:index` as each runs; a step may put units in flight with a promise the test settles. */
class Steps implements Work {
  #at = 0
  readonly settle: (() => void)[] = []
  constructor(
    readonly name: string,
    readonly costs: readonly StepCost[],
    readonly log: string[],
  ) {}
  next(): StepCost {
    return this.costs[this.#at] as StepCost
  }
  step(track: TrackInFlight): boolean {
    const cost = this.costs[this.#at] as StepCost
    this.log.push(`${this.name}:${this.#at}`)
    if (cost.units > 0) track(cost.units, new Promise<void>((resolve) => this.settle.push(resolve)))
    this.#at++
    return this.#at < this.costs.length
  }
}

const piece = (weight: number, units = 0): StepCost => ({ weight, units })

function quietLane(scheduler: FairScheduler, budgetBytes = 1 << 30): Lane {
  return scheduler.lane({ budgetBytes, pause: () => undefined, failed: (error) => { throw error } })
}

describe('fair scheduler', () => {
  it('serves lanes in turn, one piece each, and an idle lane that gets work goes next', () => {
    const { scheduler, tick, drain } = manual({ pieceUnits: 64, tickUnits: 64 })
    const log: string[] = []
    const a = quietLane(scheduler)
    const b = quietLane(scheduler)
    a.push(new Steps('a', [piece(64), piece(64), piece(64), piece(64)], log), 10)
    tick()
    expect(log).toEqual(['a:0'])
    // b was idle: it is served before a's next piece, not after a's whole batch.
    b.push(new Steps('b', [piece(1)], log), 10)
    drain()
    expect(log).toEqual(['a:0', 'b:0', 'a:1', 'a:2', 'a:3'])
  })

  it('alternates between two busy lanes piece by piece', () => {
    const { scheduler, drain } = manual({ pieceUnits: 64, tickUnits: 64 })
    const log: string[] = []
    const a = quietLane(scheduler)
    const b = quietLane(scheduler)
    a.push(new Steps('a', [piece(64), piece(64), piece(64)], log), 10)
    b.push(new Steps('b', [piece(64), piece(64), piece(64)], log), 10)
    drain()
    expect(log).toEqual(['b:0', 'a:0', 'b:1', 'a:1', 'b:2', 'a:2'])
  })

  it('runs a lane’s small steps together within its credit, and a heavy step only once its lane saved enough', () => {
    const { scheduler, drain } = manual({ pieceUnits: 64, tickUnits: 64 })
    const log: string[] = []
    const heavy = quietLane(scheduler)
    const light = quietLane(scheduler)
    // A 256-unit step (a big frame's decode) costs its lane four turns of credit.
    heavy.push(new Steps('h', [piece(256), piece(64)], log), 10)
    light.push(new Steps('l', [piece(32), piece(32), piece(64), piece(64), piece(64)], log), 10)
    drain()
    expect(log).toEqual(['l:0', 'l:1', 'l:2', 'l:3', 'l:4', 'h:0', 'h:1'])
  })

  it('keeps a lane to its in-flight window until the store settles its units, serving other lanes meanwhile', async () => {
    const { scheduler, drain } = manual({ pieceUnits: 64, tickUnits: 1_000, laneWindow: 128 })
    const log: string[] = []
    const a = quietLane(scheduler)
    const b = quietLane(scheduler)
    const writes = new Steps('a', [piece(64, 64), piece(64, 64), piece(64, 64), piece(64, 64)], log)
    a.push(writes, 10)
    drain()
    expect(log).toEqual(['a:0', 'a:1'])
    expect(a.inFlight).toBe(128)
    expect(scheduler.inFlight).toBe(128)
    b.push(new Steps('b', [piece(1)], log), 10)
    drain()
    expect(log).toEqual(['a:0', 'a:1', 'b:0'])
    // One piece commits: the lane may put one more in flight.
    writes.settle[0]?.()
    await Promise.resolve()
    await Promise.resolve()
    drain()
    expect(log).toEqual(['a:0', 'a:1', 'b:0', 'a:2'])
    expect(scheduler.inFlight).toBe(128)
    for (const settle of writes.settle.splice(0)) settle()
    await new Promise((resolve) => setImmediate(resolve))
    drain()
    expect(log).toEqual(['a:0', 'a:1', 'b:0', 'a:2', 'a:3'])
  })

  it('pauses a lane past its byte budget and resumes it at half, counting a work’s bytes until its units settle', async () => {
    const { scheduler, drain } = manual({ pieceUnits: 64, laneWindow: 1_000 })
    const pauses: boolean[] = []
    const lane = scheduler.lane({ budgetBytes: 1_000, pause: (on) => pauses.push(on), failed: (error) => { throw error } })
    const log: string[] = []
    const works = [0, 1, 2].map((i) => new Steps(`w${i}`, [piece(1, 1)], log))
    lane.push(works[0] as Steps, 400)
    lane.push(works[1] as Steps, 400)
    expect(pauses).toEqual([])
    lane.push(works[2] as Steps, 400)
    expect(pauses).toEqual([true])
    expect(lane.paused).toBe(true)
    drain()
    expect(log).toEqual(['w0:0', 'w1:0', 'w2:0'])
    // Handled, but not committed: the bytes stay charged.
    expect(lane.queuedBytes).toBe(1_200)
    expect(lane.paused).toBe(true)
    works[0]?.settle[0]?.()
    await new Promise((resolve) => setImmediate(resolve))
    expect(lane.queuedBytes).toBe(800)
    expect(pauses).toEqual([true])
    works[1]?.settle[0]?.()
    await new Promise((resolve) => setImmediate(resolve))
    expect(lane.queuedBytes).toBe(400)
    expect(pauses).toEqual([true, false])
    expect(lane.paused).toBe(false)
  })

  it('drops a closed lane’s queued work, releasing its bytes, and settles idle()', async () => {
    const { scheduler, tick } = manual({ pieceUnits: 64, tickUnits: 64 })
    const log: string[] = []
    const lane = quietLane(scheduler, 100)
    lane.push(new Steps('a', [piece(64), piece(64)], log), 80)
    lane.push(new Steps('b', [piece(64)], log), 80)
    expect(lane.paused).toBe(true)
    tick()
    const idle = lane.idle()
    lane.close()
    await idle
    expect(lane.queuedBytes).toBe(0)
    expect(lane.busy).toBe(false)
    tick()
    expect(log).toEqual(['a:0'])
    expect(scheduler.waiting).toBe(0)
  })

  it('reports a step that throws, drops that work and goes on with the next', () => {
    const { scheduler, drain } = manual()
    const failures: unknown[] = []
    const lane = scheduler.lane({ budgetBytes: 1_000, pause: () => undefined, failed: (error) => failures.push(error) })
    const log: string[] = []
    lane.push({ next: () => piece(1), step: () => { throw new Error('boom') } }, 10)
    lane.push(new Steps('after', [piece(1)], log), 10)
    drain()
    expect(failures.map((e) => (e as Error).message)).toEqual(['boom'])
    expect(log).toEqual(['after:0'])
    expect(lane.queuedBytes).toBe(0)
  })

  it('holds only its own lane while a step is asynchronous', async () => {
    const { scheduler, drain } = manual({ pieceUnits: 64, tickUnits: 1_000 })
    const log: string[] = []
    const a = quietLane(scheduler)
    const b = quietLane(scheduler)
    let finish!: () => void
    a.push({ next: () => piece(1), step: () => new Promise<boolean>((resolve) => (finish = () => resolve(false))).finally(() => log.push('a:async done')) }, 10)
    a.push(new Steps('a2', [piece(1)], log), 10)
    drain()
    b.push(new Steps('b', [piece(1)], log), 10)
    drain()
    expect(log).toEqual(['b:0'])
    finish()
    await new Promise((resolve) => setImmediate(resolve))
    drain()
    expect(log).toEqual(['b:0', 'a:async done', 'a2:0'])
  })
})

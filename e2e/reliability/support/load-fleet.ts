/**
 * A fleet of light load clients for the load scenarios (L1, L2): raw-protocol clients (a `ws`
 * socket and core's codec; see raw-client.ts), each sending one LWW update per `ops` frame to
 * keys of its own at a fixed rate, without waiting for acks. Values of a client only grow and
 * each key has one writer, so the relay must hold, for every key, a value at least as new as
 * the last one acknowledged (a newer one committed whose ack was still on the way or lost with
 * its socket).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Hlc, lwwUpdateState, lwwView, type LwwRecordState, type ReplicaId } from '@outpost/core'
import { RawClient } from './raw-client'

/** One load client: its socket, its clock, and what the relay answered. */
export interface LoadClient {
  readonly index: number
  readonly raw: RawClient
  readonly clock: Hlc
  sent: number
  acked: number
  /** Ops refused with a typed error the scenario accepts as an answer (e.g. RATE_LIMITED). */
  refused: number
  readonly errors: string[]
  /** Per key, the highest value acknowledged. */
  readonly lastAcked: Map<string, number>
  inFlight: number
}

/** What a fleet run reports. */
export interface FleetTotals {
  readonly sent: number
  readonly acked: number
  readonly refused: number
  readonly unanswered: number
  readonly errors: string[]
}

/** Options of {@link LoadFleet.connect}. */
export interface FleetOptions {
  readonly url: string
  readonly clients: number
  /** Replica ids are `${prefix}-${index}`. */
  readonly prefix: string
  readonly map: string
  readonly keysPerClient: number
  readonly random: () => number
  /** Whether a rejected `ops` promise (the relay's error frame) counts as a typed refusal rather than an error. */
  readonly refusal?: (error: unknown) => boolean
}

/** Connected load clients and their send loop; see the module comment. */
export class LoadFleet {
  readonly clients: LoadClient[] = []
  /** Ack latencies (ms) of every answered op. */
  readonly latencies: number[] = []
  readonly #options: FleetOptions
  #timers: NodeJS.Timeout[] = []

  private constructor(options: FleetOptions) {
    this.#options = options
  }

  /** Connects the fleet in waves of 50, as devices coming online would. */
  static async connect(options: FleetOptions): Promise<LoadFleet> {
    const fleet = new LoadFleet(options)
    for (let i = 0; i < options.clients; i += 50) {
      const wave = await Promise.all(
        Array.from({ length: Math.min(50, options.clients - i) }, async (_, j) => {
          const index = i + j
          const replicaId = `${options.prefix}-${index}`
          const raw = await RawClient.connect(options.url, replicaId)
          return { index, raw, clock: new Hlc({ replicaId: replicaId as ReplicaId }), sent: 0, acked: 0, refused: 0, errors: [], lastAcked: new Map(), inFlight: 0 } satisfies LoadClient
        }),
      )
      fleet.clients.push(...wave)
    }
    return fleet
  }

  /** Every client sends `opsPerSecond` until `endAt` (performance.now()), staggered over the first interval so load is even; resolves at `endAt`. */
  async run(opsPerSecond: number, endAt: number): Promise<void> {
    const interval = 1_000 / opsPerSecond
    for (const client of this.clients) {
      const offset = Math.floor(this.#options.random() * interval)
      this.#timers.push(
        setTimeout(() => {
          this.#send(client, endAt)
          this.#timers.push(setInterval(() => this.#send(client, endAt), interval))
        }, offset),
      )
    }
    while (performance.now() < endAt) await sleep(Math.min(1_000, endAt - performance.now()))
    this.stop()
  }

  /** Waits until every op is answered or `ms` have passed. */
  async drain(ms: number): Promise<void> {
    const until = performance.now() + ms
    while (this.clients.some((c) => c.inFlight > 0) && performance.now() < until) await sleep(100)
  }

  /** Keys whose stored value is older than the last acknowledged one (or newer than anything sent): lost or corrupted writes. */
  async lost(): Promise<string[]> {
    const reader = await RawClient.connect(this.#options.url, `${this.#options.prefix}-reader`)
    const stored = await reader.readMap(this.#options.map, 120_000)
    await reader.close()
    const lost: string[] = []
    for (const client of this.clients) {
      for (const [key, value] of client.lastAcked) {
        const change = stored.get(key)
        const view = change?.kind === 'lww' ? lwwView(change.state as LwwRecordState) : undefined
        const held = view?.['v']
        if (typeof held !== 'number' || held < value || held > client.sent) lost.push(`${key}: acked ${value}, relay ${JSON.stringify(view)}`)
      }
    }
    return lost
  }

  totals(): FleetTotals {
    const sum = (pick: (c: LoadClient) => number): number => this.clients.reduce((s, c) => s + pick(c), 0)
    return { sent: sum((c) => c.sent), acked: sum((c) => c.acked), refused: sum((c) => c.refused), unanswered: sum((c) => c.inFlight), errors: this.clients.flatMap((c) => c.errors) }
  }

  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers = []
  }

  async close(): Promise<void> {
    this.stop()
    await Promise.allSettled(this.clients.map((c) => c.raw.close()))
  }

  #send(client: LoadClient, endAt: number): void {
    if (performance.now() >= endAt) return
    const { map, keysPerClient, random, refusal } = this.#options
    const key = `c${client.index}-k${Math.floor(random() * keysPerClient)}`
    const value = ++client.sent
    const change = { kind: 'lww' as const, map, key, state: lwwUpdateState({ v: value, by: client.index }, client.clock.tick()) }
    const at = performance.now()
    client.inFlight++
    client.raw.ops([change]).then(
      (outcome) => {
        client.inFlight--
        this.latencies.push(performance.now() - at)
        const result = outcome.results[0]
        if (result !== null && result !== undefined) {
          client.errors.push(`${key}=${value}: ${result.code} ${result.message}`)
          return
        }
        client.acked++
        if ((client.lastAcked.get(key) ?? 0) < value) client.lastAcked.set(key, value)
      },
      (error: unknown) => {
        client.inFlight--
        if (refusal?.(error) === true) client.refused++
        else client.errors.push(`${key}=${value}: ${String(error)}`)
      },
    )
  }
}

/**
 * The acceptance suite every {@link Bus} implementation must pass (memory, Postgres, Redis).
 * Call it at the top level of a vitest test file with a factory of fresh clusters — one
 * shared transport (a hub, a schema, a key prefix) on which each `open()` is one more relay:
 *
 *   runBusTests('postgres', async () => postgresCluster(freshSchema()))
 *
 * What it holds a bus to (the guarantees in `bus.ts`): hints, topic messages and events
 * reach every listener on every other instance and never the publisher's own; publish order
 * per instance (so per publisher) holds across channels under concurrent publishers;
 * unsubscribing stops delivery; topics and channels stay apart; oversized messages and bad
 * input get typed errors and send nothing; health and lag are reported; close flushes what
 * it accepted and releases everything; and, where the cluster can cut a connection, a lost
 * connection is reported, publishes are refused meanwhile, and the gap is signalled with
 * `reconnected` when it comes back.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BusClosedError, BusError, BusMessageTooLargeError, InvalidKeyError, InvalidValueError } from '../errors'
import type { Bus, BusEvent, BusOrigin, BusStatusEvent, BusTopicMessage, MapHint } from '../bus/bus'
import { busMessageBytes, type BusItem } from '../bus/frame'
import type { Value } from '../types'
import { prng, testSeed } from './random'

/** One shared transport on which a test opens several instances (several relays). */
export interface BusTestCluster {
  /** Opens one more instance; it is ready to receive when this resolves. */
  open(options?: { readonly maxMessageBytes?: number }): Promise<Bus>
  /**
   * Cuts `bus`'s connection to the transport (sending and receiving) until the returned
   * function restores it. Leave it out when the implementation cannot simulate that.
   */
  cut?(bus: Bus): Promise<() => Promise<void>>
  /** How many connections (or equivalent) `bus` holds on the transport now; 0 once closed. */
  resources?(bus: Bus): Promise<number>
  /** Frees the transport once the test's instances are closed. */
  dispose(): Promise<void>
}

/** Options of {@link runBusTests}. */
export interface BusTestOptions {
  /** How long a test waits for a delivery before failing (a liveness bound, never a figure); default 10 s. */
  readonly waitMs?: number
  /** The clusters implement {@link BusTestCluster.cut}: also run the lost-connection test. */
  readonly cuts?: boolean
}

/** Everything one instance received, in arrival order. */
interface Received {
  readonly log: { kind: 'hints' | 'topic' | 'event'; node: string; body: unknown }[]
  readonly status: BusStatusEvent[]
}

function record(bus: Bus, topic: string, channel: string): Received {
  const received: Received = { log: [], status: [] }
  bus.onHints((hints, origin) => received.log.push({ kind: 'hints', node: origin.node, body: hints }))
  bus.subscribeTopic(topic, (message, origin) => received.log.push({ kind: 'topic', node: origin.node, body: message }))
  bus.subscribeEvents(channel, (event, origin) => received.log.push({ kind: 'event', node: origin.node, body: event }))
  bus.onStatus((event) => received.status.push(event))
  return received
}

function topicMessage(topic: string, publisher: string, seq: number, payload: Uint8Array | number[] = [seq & 0xff]): BusTopicMessage {
  return { topic, publisher, seq, payload: payload instanceof Uint8Array ? payload : Uint8Array.from(payload) }
}

/** Runs the bus acceptance suite against clusters made by `makeCluster` (a fresh, empty transport per test). */
export function runBusTests(name: string, makeCluster: () => Promise<BusTestCluster>, options: BusTestOptions = {}): void {
  const waitMs = options.waitMs ?? 10_000
  const until = (check: () => void): Promise<void> => vi.waitFor(check, { timeout: waitMs, interval: 5 })

  describe(`Bus acceptance: ${name}`, () => {
    let cluster: BusTestCluster | undefined
    const open: Bus[] = []
    const start = async (count: number, maxMessageBytes?: number): Promise<Bus[]> => {
      cluster = await makeCluster()
      const buses: Bus[] = []
      for (let i = 0; i < count; i++) buses.push(await join(maxMessageBytes))
      return buses
    }
    const join = async (maxMessageBytes?: number): Promise<Bus> => {
      const bus = await (cluster as BusTestCluster).open(maxMessageBytes === undefined ? undefined : { maxMessageBytes })
      open.push(bus)
      return bus
    }

    afterEach(async () => {
      for (const bus of open.splice(0)) await bus.close()
      await cluster?.dispose()
      cluster = undefined
    })

    it('delivers hints, topic messages and events to every listener on every other instance, never back to the publisher', async () => {
      const buses = await start(3)
      const received = buses.map((bus) => record(bus, 'room', 'locks'))
      const second: BusTopicMessage[][] = buses.map((bus) => {
        const list: BusTopicMessage[] = []
        bus.subscribeTopic('room', (message) => list.push(message))
        return list
      })
      const value = (i: number): Value => ({ released: `lock-${i}`, token: 2n ** 64n + BigInt(i), at: new Date(i), tags: ['a', null] })
      await Promise.all(buses.map(async (bus, i) => {
        await bus.publishHints([{ map: `map-${i}`, seq: i + 1 }, { map: '__proto__', seq: 0 }])
        await bus.publishTopic(topicMessage('room', `replica-${i}`, 1, [i, 0, 255]))
        await bus.publishEvent({ channel: 'locks', value: value(i) })
      }))
      await until(() => {
        for (const r of received) expect(r.log).toHaveLength(6)
        for (const list of second) expect(list).toHaveLength(2)
      })
      // Each instance now acknowledges; an ack arrives after the original on every instance (publish order), so
      // once an instance has both acks, its own messages would have come back by now if they ever did.
      const acks = buses.map((bus) => {
        const from = new Set<string>()
        bus.subscribeEvents('ack', (_, origin) => from.add(origin.node))
        return from
      })
      await Promise.all(buses.map((bus) => bus.publishEvent({ channel: 'ack', value: bus.node })))
      await until(() => {
        for (const set of acks) expect(set.size).toBe(2)
      })
      buses.forEach((bus, i) => {
        const log = received[i]?.log ?? []
        expect(log.every((entry) => entry.node !== bus.node)).toBe(true)
        buses.forEach((other, j) => {
          if (j === i) return
          const fromOther = log.filter((entry) => entry.node === other.node)
          expect(fromOther.map((entry) => entry.kind)).toEqual(['hints', 'topic', 'event'])
          expect(fromOther[0]?.body).toEqual([{ map: `map-${j}`, seq: j + 1 }, { map: '__proto__', seq: 0 }])
          const message = fromOther[1]?.body as BusTopicMessage
          expect(message).toMatchObject({ topic: 'room', publisher: `replica-${j}`, seq: 1 })
          expect([...message.payload]).toEqual([j, 0, 255])
          expect(fromOther[2]?.body).toEqual({ channel: 'locks', value: value(j) })
        })
        expect(second[i]?.map((m) => m.publisher).sort()).toEqual(buses.map((_, j) => `replica-${j}`).filter((_, j) => j !== i).sort())
      })
    })

    it('keeps publish order per instance, across hints, topics and events, under concurrent publishers', async () => {
      const seed = testSeed(`bus order ${name}`)
      const random = prng(seed)
      const buses = await start(3)
      const logs = buses.map((bus) => record(bus, 'chat', 'ev').log)
      const sent = buses.map(() => [] as { kind: 'hints' | 'topic' | 'event'; body: unknown }[])
      const seqs = new Map<string, number>()
      const pending: Promise<void>[] = []
      for (let n = 0; n < 600; n++) {
        const b = Math.floor(random() * buses.length)
        const bus = buses[b] as Bus
        const roll = random()
        if (roll < 0.7) {
          const publisher = `bus${b}-replica${Math.floor(random() * 3)}`
          const seq = (seqs.get(publisher) ?? 0) + 1
          seqs.set(publisher, seq)
          const message = topicMessage('chat', publisher, seq, [seq & 0xff, (seq >> 8) & 0xff])
          sent[b]?.push({ kind: 'topic', body: message })
          pending.push(bus.publishTopic(message))
        } else if (roll < 0.85) {
          const hints: MapHint[] = [{ map: `map-${b}`, seq: n }]
          sent[b]?.push({ kind: 'hints', body: hints })
          pending.push(bus.publishHints(hints))
        } else {
          const event: BusEvent = { channel: 'ev', value: { n } }
          sent[b]?.push({ kind: 'event', body: event })
          pending.push(bus.publishEvent(event))
        }
        // Now and then let the transports work, so publishes interleave with deliveries.
        if (random() < 0.1) await Promise.race([pending[pending.length - 1], Promise.resolve()])
        if (random() < 0.02) await Promise.all(pending)
      }
      await Promise.all(pending)
      await until(() => {
        buses.forEach((_, r) => expect(logs[r]).toHaveLength(sent.reduce((sum, list, b) => sum + (b === r ? 0 : list.length), 0)))
      })
      buses.forEach((_, r) => {
        buses.forEach((source, s) => {
          if (s === r) return
          const got = (logs[r] ?? []).filter((entry) => entry.node === source.node).map((entry) => ({ kind: entry.kind, body: entry.body }))
          expect(got.length, `seed ${seed}: instance ${r} from ${s}`).toBe(sent[s]?.length)
          expect(got, `seed ${seed}: instance ${r} from ${s}`).toEqual(sent[s])
        })
      })
    })

    it('delivers only the topics and channels subscribed', async () => {
      const [a, b, c] = (await start(3)) as [Bus, Bus, Bus]
      const onA: string[] = []
      const onB: string[] = []
      b.subscribeTopic('a', (m) => onA.push(`topic ${m.publisher}`))
      b.subscribeEvents('x', (e) => onA.push(`event ${String(e.value)}`))
      c.subscribeTopic('b', (m) => onB.push(`topic ${m.publisher}`))
      c.subscribeEvents('y', (e) => onB.push(`event ${String(e.value)}`))
      await a.publishTopic(topicMessage('b', 'to-b', 1))
      await a.publishEvent({ channel: 'y', value: 'to-y' })
      await a.publishTopic(topicMessage('A', 'case-matters', 1))
      await a.publishTopic(topicMessage('a', 'to-a', 1))
      await a.publishEvent({ channel: 'x', value: 'to-x' })
      await until(() => {
        expect(onA).toEqual(['topic to-a', 'event to-x'])
        expect(onB).toEqual(['topic to-b', 'event to-y'])
      })
    })

    it('stops delivering to a listener once unsubscribed, even mid-delivery, and keeps the others', async () => {
      const [a, b] = (await start(2)) as [Bus, Bus]
      const first: number[] = []
      const kept: number[] = []
      const once: number[] = []
      const hints: unknown[] = []
      const events: unknown[] = []
      const offFirst = b.subscribeTopic('room', (m) => first.push(m.seq))
      b.subscribeTopic('room', (m) => kept.push(m.seq))
      const offOnce = b.subscribeTopic('room', (m) => {
        once.push(m.seq)
        offOnce()
      })
      const offHints = b.onHints((h) => hints.push(h))
      const offEvents = b.subscribeEvents('ch', (e) => events.push(e.value))
      await a.publishTopic(topicMessage('room', 'p', 1))
      await a.publishTopic(topicMessage('room', 'p', 2))
      await a.publishHints([{ map: 'm', seq: 1 }])
      await a.publishEvent({ channel: 'ch', value: 1 })
      await until(() => expect(events).toEqual([1]))
      offFirst()
      offFirst()
      offHints()
      offEvents()
      await a.publishTopic(topicMessage('room', 'p', 3))
      await a.publishHints([{ map: 'm', seq: 2 }])
      await a.publishEvent({ channel: 'ch', value: 2 })
      await a.publishTopic(topicMessage('room', 'p', 4))
      await until(() => expect(kept).toEqual([1, 2, 3, 4]))
      expect(first).toEqual([1, 2])
      expect(once).toEqual([1])
      expect(hints).toEqual([[{ map: 'm', seq: 1 }]])
      expect(events).toEqual([1])
    })

    it('refuses a message over maxMessageBytes with BusMessageTooLargeError, sending nothing, and delivers one at the limit', async () => {
      const limit = 64 * 1024
      const [a, b] = (await start(2, limit)) as [Bus, Bus]
      expect(a.limits.maxMessageBytes).toBe(limit)
      const got: BusTopicMessage[] = []
      const events: unknown[] = []
      const hints: unknown[] = []
      b.subscribeTopic('big', (m) => got.push(m))
      b.subscribeEvents('big', (e) => events.push(e.value))
      b.onHints((h) => hints.push(h))
      // The largest payload that fits, measured with a publish time as large as any clock gives (9 bytes in msgpack).
      const sized = (n: number): BusItem => ({ kind: 'topic', at: Date.now() + 0.5, message: topicMessage('big', 'p', 1, new Uint8Array(n)) })
      let n = limit
      while (busMessageBytes(sized(n)) > limit) n--
      const fits = Uint8Array.from({ length: n }, (_, i) => (i * 31) & 0xff)
      const tooBig = new Uint8Array(n + 9)
      const refused = [
        a.publishTopic(topicMessage('big', 'p', 1, tooBig)),
        a.publishEvent({ channel: 'big', value: 'x'.repeat(limit) }),
        a.publishHints(Array.from({ length: 300 }, (_, i) => ({ map: `${i}`.padEnd(256, 'm'), seq: i }))),
      ]
      for (const attempt of refused) {
        const error = await attempt.then(() => undefined, (e: unknown) => e)
        expect(error).toBeInstanceOf(BusMessageTooLargeError)
        expect((error as BusMessageTooLargeError).code).toBe('FRAME_TOO_LARGE')
        expect((error as BusMessageTooLargeError).details?.['limitBytes']).toBe(limit)
      }
      await a.publishTopic(topicMessage('big', 'p', 2, fits))
      await until(() => expect(got).toHaveLength(1))
      expect(got[0]?.seq).toBe(2)
      expect(got[0]?.payload).toEqual(fits)
      expect(events).toEqual([])
      expect(hints).toEqual([])
    })

    it('refuses bad input with typed errors and sends nothing; an empty hint list sends nothing', async () => {
      const [a, b] = (await start(2)) as [Bus, Bus]
      const received = record(b, 't', 'c')
      const bad: [() => Promise<void>, new (...args: never[]) => Error][] = [
        [() => a.publishHints([{ map: '', seq: 1 }]), InvalidKeyError],
        [() => a.publishHints([{ map: 'm'.repeat(257), seq: 1 }]), InvalidKeyError],
        [() => a.publishHints([{ map: 'a\ud800', seq: 1 }]), InvalidKeyError],
        [() => a.publishHints([{ map: 'm', seq: -1 }]), InvalidValueError],
        [() => a.publishHints([{ map: 'm', seq: 1.5 }]), InvalidValueError],
        [() => a.publishHints([{ map: 'm', seq: 2 ** 53 }]), InvalidValueError],
        [() => a.publishHints('m' as unknown as MapHint[]), InvalidValueError],
        [() => a.publishTopic(topicMessage('', 'p', 1)), InvalidKeyError],
        [() => a.publishTopic(topicMessage('t'.repeat(257), 'p', 1)), InvalidKeyError],
        [() => a.publishTopic(topicMessage('t', '', 1)), InvalidKeyError],
        [() => a.publishTopic(topicMessage('t', 'p'.repeat(129), 1)), InvalidKeyError],
        [() => a.publishTopic(topicMessage('t', 'p', Number.NaN)), InvalidValueError],
        [() => a.publishTopic({ topic: 't', publisher: 'p', seq: 1, payload: 'bytes' as unknown as Uint8Array }), InvalidValueError],
        [() => a.publishEvent({ channel: '', value: 1 }), InvalidKeyError],
        [() => a.publishEvent({ channel: 'c', value: undefined as unknown as Value }), InvalidValueError],
        [() => a.publishEvent({ channel: 'c', value: { f: () => 1 } as unknown as Value }), InvalidValueError],
      ]
      for (const [attempt, type] of bad) await expect(attempt()).rejects.toBeInstanceOf(type)
      await a.publishHints([])
      await a.publishTopic(topicMessage('t', 'sentinel', 1))
      await until(() => expect(received.log).toHaveLength(1))
      expect((received.log[0]?.body as BusTopicMessage).publisher).toBe('sentinel')
      expect(a.health().published).toBe(1)
    })

    it('reports health and publish → delivery lag', async () => {
      const [a, b] = (await start(2)) as [Bus, Bus]
      expect(b.health()).toMatchObject({ state: 'connected', connected: true, delivered: 0, published: 0, reconnects: 0, gaps: 0, lastLagMs: undefined })
      const lags: number[] = []
      const origins: BusOrigin[] = []
      b.onLag((ms) => lags.push(ms))
      b.subscribeTopic('t', (_, origin) => origins.push(origin))
      const before = Date.now()
      for (let i = 1; i <= 3; i++) await a.publishTopic(topicMessage('t', 'p', i))
      await until(() => expect(origins).toHaveLength(3))
      expect(lags).toHaveLength(3)
      for (const lag of lags) expect(Number.isFinite(lag) && lag >= 0).toBe(true)
      for (const origin of origins) {
        expect(origin.node).toBe(a.node)
        expect(origin.publishedAt).toBeGreaterThanOrEqual(before - 1)
      }
      expect(a.health().published).toBe(3)
      const health = b.health()
      expect(health.delivered).toBe(3)
      expect(health.lastLagMs).toBe(lags[2])
      expect(health.connected).toBe(true)
      expect(a.node).not.toBe(b.node)
    })

    it('delivers to a new instance what is published after it opened, not before', async () => {
      const [a] = (await start(1)) as [Bus]
      await a.publishTopic(topicMessage('t', 'p', 1))
      const late = await join()
      const got: number[] = []
      late.subscribeTopic('t', (m) => got.push(m.seq))
      await a.publishTopic(topicMessage('t', 'p', 2))
      await until(() => expect(got).toEqual([2]))
    })

    it('close sends what it accepted, then releases everything; later calls get BusClosedError', async () => {
      const [a, b, c] = (await start(3)) as [Bus, Bus, Bus]
      const onB: number[] = []
      const onC: number[] = []
      b.subscribeTopic('t', (m) => onB.push(m.seq))
      c.subscribeTopic('t', (m) => onC.push(m.seq))
      if (cluster?.resources !== undefined) expect(await cluster.resources(b)).toBeGreaterThan(0)
      // Accepted, not yet sent: close must send it.
      const accepted = a.publishTopic(topicMessage('t', 'p', 1))
      await a.close()
      await accepted
      await until(() => expect(onC).toEqual([1]))
      await until(() => expect(onB).toEqual([1]))
      await b.close()
      await b.close()
      expect(b.health().state).toBe('closed')
      expect(b.health().connected).toBe(false)
      await expect(b.publishTopic(topicMessage('t', 'p', 9))).rejects.toBeInstanceOf(BusClosedError)
      await expect(a.publishHints([{ map: 'm', seq: 1 }])).rejects.toBeInstanceOf(BusClosedError)
      await expect(b.publishEvent({ channel: 'c', value: 1 })).rejects.toBeInstanceOf(BusClosedError)
      expect(() => b.subscribeTopic('t', () => undefined)).toThrow(BusClosedError)
      expect(() => b.onHints(() => undefined)).toThrow(BusClosedError)
      expect(() => b.onStatus(() => undefined)).toThrow(BusClosedError)
      if (cluster?.resources !== undefined) {
        const resources = cluster.resources
        await until(async () => expect(await resources(b)).toBe(0))
        await until(async () => expect(await resources(a)).toBe(0))
      }
      // The rest of the cluster carries on; the closed instance's listeners hear nothing more.
      const d = await join()
      await d.publishTopic(topicMessage('t', 'q', 2))
      await until(() => expect(onC).toEqual([1, 2]))
      expect(onB).toEqual([1])
    })

    // Registered only for clusters that can cut a connection (`cuts: true`), so no test is ever skipped.
    if (options.cuts === true) {
      it('reports a lost connection, refuses publishes while down, and signals the gap with reconnected when back', async () => {
        const [a, b] = (await start(2)) as [Bus, Bus]
        const received = record(a, 'room', 'c')
        const cut = cluster?.cut
        if (cut === undefined) throw new Error(`runBusTests(${name}, …, { cuts: true }) needs clusters with a cut() hook`)
        const restore = await cut(a)
        await until(() => expect(a.health().connected).toBe(false))
        expect(a.health().state).toBe('reconnecting')
        expect(received.status.map((s) => s.type)).toContain('disconnected')
        const refused = await a.publishTopic(topicMessage('room', 'p', 1)).then(() => undefined, (e: unknown) => e)
        expect(refused).toBeInstanceOf(BusError)
        expect((refused as BusError).code).toBe('BUS_FAILED')
        // Published while `a` is cut: it may reach `a` later (a retained stream) or be lost (a signalled gap).
        await b.publishHints([{ map: 'm', seq: 1 }])
        await restore()
        await until(() => expect(a.health().connected).toBe(true))
        const types = received.status.map((s) => s.type)
        expect(types.indexOf('reconnected')).toBeGreaterThan(types.indexOf('disconnected'))
        const back = received.status.find((s) => s.type === 'reconnected') as { downMs: number }
        expect(back.downMs).toBeGreaterThanOrEqual(0)
        expect(a.health().reconnects).toBeGreaterThanOrEqual(1)
        expect(a.health().gaps).toBeGreaterThanOrEqual(1)
        await b.publishHints([{ map: 'm', seq: 2 }])
        await until(() => expect(received.log.some((e) => (e.body as MapHint[])[0]?.seq === 2)).toBe(true))
        const seqs = received.log.filter((e) => e.kind === 'hints').map((e) => (e.body as MapHint[])[0]?.seq)
        expect(seqs[seqs.length - 1]).toBe(2)
        expect(seqs.filter((s) => s === 2)).toHaveLength(1)
        // And `a` publishes again.
        const onB: number[] = []
        b.subscribeTopic('room', (m) => onB.push(m.seq))
        await a.publishTopic(topicMessage('room', 'p', 2))
        await until(() => expect(onB).toEqual([2]))
      })
    }
  })
}

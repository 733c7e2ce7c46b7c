/**
 * The in-memory bus passes the bus acceptance suite (with simulated connection cuts); the
 * connection state machine matches its table; and the packet format round-trips and refuses
 * what another relay version or a corrupt sender could hand it, with typed errors.
 */
import { describe, expect, it } from 'vitest'
import { BUS_PACKET_VERSION, BUS_TRANSITIONS, busTransition, decodeBusPacket, encodeBusItem, encodeBusPacket, type BusItem } from '../src/bus'
import { MemoryBus, MemoryBusHub } from '../src/bus/memory-bus'
import type { Bus, BusState } from '../src/bus/bus'
import type { BusConnectionEvent } from '../src/bus/bus-state'
import { DecodeError, FrameTooLargeError, InvalidMessageError } from '../src/errors'
import { encode } from '../src/protocol/codec'
import { runBusTests } from '../src/testing/bus-suite'

runBusTests(
  'memory',
  async () => {
    const hub = new MemoryBusHub()
    return {
      open: async (options) => {
        const bus = hub.open(options)
        return bus
      },
      cut: async (bus) => {
        ;(bus as MemoryBus).cut()
        return async () => (bus as MemoryBus).restore()
      },
      // A closed instance leaves its hub.
      resources: async (bus) => (hub.has(bus as MemoryBus) ? 1 : 0),
      dispose: async () => {
        expect(hub.size).toBe(0)
      },
    }
  },
  { cuts: true },
)

describe('bus connection state machine', () => {
  // The complete table, written independently of the implementation's.
  const expected: Record<BusState, Record<BusConnectionEvent, [BusState, 'disconnected' | 'reconnected' | undefined]>> = {
    connecting: { connected: ['connected', undefined], lost: ['connecting', undefined], close: ['closed', undefined] },
    connected: { connected: ['connected', undefined], lost: ['reconnecting', 'disconnected'], close: ['closed', undefined] },
    reconnecting: { connected: ['connected', 'reconnected'], lost: ['reconnecting', undefined], close: ['closed', undefined] },
    closed: { connected: ['closed', undefined], lost: ['closed', undefined], close: ['closed', undefined] },
  }

  it('follows the complete transition table', () => {
    for (const state of Object.keys(expected) as BusState[]) {
      for (const event of ['connected', 'lost', 'close'] as const) {
        const [next, signal] = expected[state][event]
        expect(busTransition(state, event), `${state} + ${event}`).toEqual({ state: next, signal })
      }
    }
    expect(Object.keys(BUS_TRANSITIONS).sort()).toEqual(Object.keys(expected).sort())
  })

  it('signals disconnected and reconnected once per cut, and nothing after close', async () => {
    const hub = new MemoryBusHub()
    const bus = hub.open()
    const seen: string[] = []
    bus.onStatus((event) => seen.push(event.type))
    bus.cut()
    bus.cut()
    bus.restore()
    bus.restore()
    await bus.close()
    bus.restore()
    expect(seen).toEqual(['disconnected', 'reconnected'])
    expect(bus.health()).toMatchObject({ state: 'closed', reconnects: 1, gaps: 1 })
  })

  it('reports a throwing listener as listener-error and keeps delivering to the others', async () => {
    const hub = new MemoryBusHub()
    const a = hub.open()
    const b = hub.open()
    const errors: unknown[] = []
    const got: number[] = []
    b.onStatus((event) => {
      if (event.type === 'listener-error') errors.push(event.error)
    })
    b.subscribeTopic('t', () => {
      throw new Error('listener bug')
    })
    b.subscribeTopic('t', (m) => got.push(m.seq))
    await a.publishTopic({ topic: 't', publisher: 'p', seq: 1, payload: new Uint8Array() })
    await a.publishTopic({ topic: 't', publisher: 'p', seq: 2, payload: new Uint8Array() })
    await Promise.resolve()
    await Promise.resolve()
    expect(got).toEqual([1, 2])
    expect(errors).toHaveLength(2)
    expect(b.health().lastError).toBe('listener bug')
    await a.close()
    await b.close()
  })

  it('never calls a listener inside publish', async () => {
    const hub = new MemoryBusHub()
    const a = hub.open()
    const b = hub.open()
    let calls = 0
    b.onHints(() => calls++)
    const sent = a.publishHints([{ map: 'm', seq: 1 }])
    expect(calls).toBe(0)
    await sent
    await Promise.resolve()
    expect(calls).toBe(1)
    await a.close()
    await b.close()
  })
})

describe('bus packets', () => {
  const items: BusItem[] = [
    { kind: 'hints', at: 1_700_000_000_000, hints: [{ map: 'm', seq: 3 }, { map: '日本', seq: 0 }] },
    { kind: 'topic', at: 1, message: { topic: 't', publisher: 'r', seq: 9, payload: Uint8Array.of(0, 255) } },
    { kind: 'event', at: 2.5, event: { channel: 'locks', value: { lock: 'l', token: 2n ** 70n, when: new Date(5) } } },
  ]

  it('round-trips any mix of messages in order, for any count (array header sizes)', () => {
    for (const count of [0, 1, 3, 13, 14, 15, 16, 300, 70_000]) {
      const list = Array.from({ length: count }, (_, i) => items[i % items.length] as BusItem)
      const packet = decodeBusPacket(encodeBusPacket('node-1', list.map(encodeBusItem)), 64 * 1024 * 1024)
      expect(packet.node).toBe('node-1')
      expect(packet.items).toHaveLength(count)
      if (count > 0) expect(packet.items.slice(0, 3)).toEqual(list.slice(0, 3))
    }
  })

  it('refuses a packet too large before decoding it, and one of another version or shape with InvalidMessageError', () => {
    const bytes = encodeBusPacket('n', items.map(encodeBusItem))
    expect(() => decodeBusPacket(bytes, bytes.length - 1)).toThrow(FrameTooLargeError)
    expect(() => decodeBusPacket(encode([BUS_PACKET_VERSION + 1, 'n']), 1024)).toThrow(/version 2/)
    const corrupt: unknown[] = [
      'not a packet',
      [BUS_PACKET_VERSION],
      [BUS_PACKET_VERSION, ''],
      [BUS_PACKET_VERSION, 'n'.repeat(65)],
      [BUS_PACKET_VERSION, 'n', ['x', 1]],
      [BUS_PACKET_VERSION, 'n', ['h']],
      [BUS_PACKET_VERSION, 'n', ['h', 1, 'map']],
      [BUS_PACKET_VERSION, 'n', ['h', 1, '', 1]],
      [BUS_PACKET_VERSION, 'n', ['h', 1, 'm', -1]],
      [BUS_PACKET_VERSION, 'n', ['t', 1, 't', 'p', 1]],
      [BUS_PACKET_VERSION, 'n', ['t', 1, 't', 'p', 1, 'not bytes']],
      [BUS_PACKET_VERSION, 'n', ['e', 1, '', 1]],
    ]
    for (const wire of corrupt) expect(() => decodeBusPacket(encode(wire), 1024), JSON.stringify(wire)).toThrow(InvalidMessageError)
    expect(() => decodeBusPacket(Uint8Array.of(0xc1), 1024)).toThrow(DecodeError)
  })
})

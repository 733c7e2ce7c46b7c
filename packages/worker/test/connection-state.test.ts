/**
 * The connection state machine against its complete transition table: every state ×
 * every event, so a change to the machine that is not also made here fails.
 */
import { describe, expect, it } from 'vitest'
import { BACKOFF_CAP_MS, CONNECTION_EVENTS, CONNECTION_STATES, backoffDelay, transition, type ConnectionEvent, type ConnectionState } from '../src/sync/connection-state'

const _ = 'same'
type Cell = ConnectionState | typeof _

// Columns in CONNECTION_EVENTS order:
//   start, socket-open, welcome, synced, socket-closed, error, token-expired, token-refreshed, go-offline, go-online, backoff-elapsed
const TABLE: Record<ConnectionState, readonly Cell[]> = {
  offline: ['connecting', _, _, _, _, _, _, _, _, 'connecting', _],
  connecting: [_, 'handshaking', _, _, 'backing-off', 'backing-off', 'auth-expired', _, 'offline', _, _],
  handshaking: [_, _, 'syncing', _, 'backing-off', 'backing-off', 'auth-expired', _, 'offline', _, _],
  syncing: [_, _, _, 'live', 'backing-off', 'backing-off', 'auth-expired', _, 'offline', _, _],
  live: [_, _, _, _, 'backing-off', 'backing-off', 'auth-expired', _, 'offline', _, _],
  'backing-off': [_, _, _, _, _, _, 'auth-expired', _, 'offline', 'connecting', 'connecting'],
  'auth-expired': [_, _, _, _, _, 'backing-off', _, 'connecting', 'offline', _, _],
}

describe('connection state machine', () => {
  it('lists every state and every event', () => {
    expect([...CONNECTION_STATES].sort()).toEqual(Object.keys(TABLE).sort())
    expect(CONNECTION_EVENTS).toHaveLength(11)
  })

  for (const state of CONNECTION_STATES) {
    CONNECTION_EVENTS.forEach((event: ConnectionEvent, i) => {
      const cell = TABLE[state][i] as Cell
      const expected = cell === _ ? state : cell
      it(`${state} --${event}--> ${expected}`, () => {
        expect(transition(state, event)).toBe(expected)
      })
    })
  }

  it('go-offline reaches offline from every state', () => {
    for (const state of CONNECTION_STATES) expect(transition(state, 'go-offline')).toBe('offline')
  })
})

describe('backoff', () => {
  it('grows exponentially from 250 ms with jitter in [half, full] and caps at 30 s', () => {
    expect(backoffDelay(0, () => 0)).toBe(125)
    expect(backoffDelay(0, () => 0.999999)).toBe(250)
    expect(backoffDelay(3, () => 0)).toBe(1000)
    expect(backoffDelay(3, () => 0.999999)).toBe(2000)
    expect(backoffDelay(20, () => 0.999999)).toBe(BACKOFF_CAP_MS)
    expect(backoffDelay(1000, () => 0)).toBe(BACKOFF_CAP_MS / 2)
  })

  it('spreads clients: different random draws give different delays', () => {
    const delays = new Set([0.1, 0.3, 0.5, 0.7, 0.9].map((r) => backoffDelay(5, () => r)))
    expect(delays.size).toBe(5)
  })
})

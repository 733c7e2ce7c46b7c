/**
 * A `changes` message encoded once for many subscriptions (`shared-frame.ts`): each
 * subscriber's frame is byte for byte the one `encodeMessage` gives for its own message, in
 * every wire version, for subscription ids and frame numbers of every msgpack width, and
 * decodes to exactly that message.
 */
import { describe, expect, it } from 'vitest'
import { InvalidValueError } from '../src/errors'
import { decode, decodeServerMessage, encodeMessage, encodeMessageCounted } from '../src/protocol/codec'
import { PROTOCOL_VERSIONS, type ChangesMessage } from '../src/protocol/messages'
import { encodeSharedChanges, stampChanges, type NumberedChangesMessage } from '../src/protocol/shared-frame'
import { sampleChange } from '../src/testing/sample-messages'
import type { Change } from '../src/types'

/** Both sides of every msgpack integer width msgpackr picks (fixint, uint8, uint16, uint32), and past uint32. */
const IDS = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER]

/** Messages as live fan-out sends them (key order: type, sub, changes, moveOut?, seq?, frame), and some it does not. */
/** A change that is not a valid server change (no canonical stamp): v2 declines to pack it. */
const odd: Change = { kind: 'lww', map: 'todos', key: '__proto__', state: { fields: [['', { nested: [1, 2n, new Uint8Array([7])] }, 'not-a-canonical-stamp']] } } as unknown as Change

function messages(): NumberedChangesMessage[] {
  const changes: Change[] = Array.from({ length: 5 }, (_, i) => sampleChange('todos', `k${i}`, i + 1))
  return [
    { type: 'changes', sub: 0, changes, seq: 42, frame: 1 },
    { type: 'changes', sub: 0, changes, moveOut: ['gone', ''], seq: 7, frame: 1 },
    { type: 'changes', sub: 0, changes: [], moveOut: ['a'], frame: 1 },
    { type: 'changes', sub: 0, changes: [changes[0] as Change], frame: 1 },
    // A change v2 declines to pack travels as in v1: the shared frame must follow it there too.
    { type: 'changes', sub: 0, changes: [odd], seq: 3, frame: 1 },
    // `frame` before `sub`: the slots follow the message's own key order.
    { frame: 1, changes, type: 'changes', sub: 0 } as NumberedChangesMessage,
  ]
}

describe('encodeSharedChanges / stampChanges', () => {
  for (const version of PROTOCOL_VERSIONS) {
    it(`gives every subscriber the bytes of its own encodeMessage (wire v${version})`, () => {
      for (const message of messages()) {
        const shared = encodeSharedChanges(message, version)
        expect(shared.changes).toBe(message.changes.length)
        for (const sub of IDS) {
          for (const frame of [1, 0x80, 0x10000, 0x1_0000_0000]) {
            const own: ChangesMessage = { ...message, sub, frame }
            const expected = encodeMessage(own, version)
            const stamped = stampChanges(shared, sub, frame)
            expect(stamped).toEqual(expected)
            expect(decode(stamped)).toEqual(decode(expected))
            if (message.changes[0] !== odd) expect(decodeServerMessage(stamped, undefined, version)).toEqual(decodeServerMessage(expected, undefined, version))
          }
        }
        expect(shared.elements).toBe(encodeMessageCounted(message, version).elements)
      }
    })
  }

  it('decodes, for several subscribers, to their own message', () => {
    const message = messages()[1] as NumberedChangesMessage
    const shared = encodeSharedChanges(message, 2)
    for (const [sub, frame] of [[1, 1], [200, 9], [70_000, 300], [5_000_000_000, 2]] as const) {
      expect(decodeServerMessage(stampChanges(shared, sub, frame), undefined, 2)).toEqual({ ...message, sub, frame })
    }
  })

  it('refuses what encodeMessage refuses, with the same error class', () => {
    const bad = { type: 'changes', sub: 1, frame: 1, changes: [{ ...sampleChange('todos', 'k'), state: { fields: [['f', [1, undefined], 'x']] } }] } as unknown as NumberedChangesMessage
    expect(() => encodeMessage(bad, 1)).toThrow(InvalidValueError)
    expect(() => encodeSharedChanges(bad, 1)).toThrow(InvalidValueError)
  })
})

/**
 * One rule per property of a value, shared by the write API, the wire and the stores:
 *
 * - Strings, object keys, field names, record keys and map names are well-formed UTF-16
 *   (no lone surrogates). msgpack carries UTF-8, which has no encoding for a lone
 *   surrogate, so such a string would reach other replicas as U+FFFD while its writer
 *   kept the original: a divergence Merkle never notices. They are refused at write time
 *   (INVALID_VALUE / INVALID_KEY), and a frame whose string bytes are not well-formed
 *   UTF-8 is refused whole by the codec.
 * - Nesting depth is {@link VALUE_LIMITS.maxDepth}, counted from the field value: a value
 *   at the limit is accepted by the write API and fits every envelope Outpost puts around
 *   it (CRDT state, outbox entry, protocol frame); one level more is refused at the write
 *   API with the limit in the message.
 */
import { describe, expect, it } from 'vitest'
import { DecodeError, InvalidKeyError, InvalidMessageError, InvalidValueError, serializeError } from '../src/errors'
import { assertKey, assertMapName } from '../src/keys'
import { DEFAULT_CODEC_LIMITS, decode, decodeClientMessage, decodeServerMessage, encode, encodeMessage, parseChange, scanFrame } from '../src/protocol/codec'
import { changeSchema, clientMessageSchema } from '../src/protocol/messages'
import { lwwUpdateState, orAddState } from '../src/crdt'
import { encodeStamp } from '../src/clock'
import { MemoryStore } from '../src/store/memory-store'
import { prng, testSeed } from '../src/testing/random'
import { isWellFormed, isWellFormedUtf8 } from '../src/unicode'
import { VALUE_LIMITS, assertRecord, assertStoredValue, assertValue } from '../src/value'
import type { ReplicaId, Value } from '../src/types'

const LONE = ['\ud800', 'a\ud800b', '\udfff', 'x\udc00', '\udc00\ud800', 'ok\ud83d']
const FINE = ['', 'plain', '\ud83d\ude00 emoji', '\ufffd', '\uffff', 'ä€𝄞']

function nested(levels: number): Value {
  let value: Value = 1
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

const stamp = encodeStamp({ wall: 1, counter: 0, replica: 'r' as ReplicaId })

describe('well-formed strings', () => {
  it('isWellFormed tells lone surrogates from pairs', () => {
    for (const s of LONE) expect(isWellFormed(s), JSON.stringify(s)).toBe(false)
    for (const s of FINE) expect(isWellFormed(s), JSON.stringify(s)).toBe(true)
  })

  it('the write API refuses lone surrogates in string values, nested values and field names with INVALID_VALUE', () => {
    for (const s of LONE) {
      expect(() => assertValue(s)).toThrow(InvalidValueError)
      expect(() => assertValue({ deep: [1, { s }] })).toThrow(InvalidValueError)
      expect(() => assertRecord({ title: s })).toThrow(InvalidValueError)
      expect(() => assertRecord({ [s]: 1 })).toThrow(InvalidValueError)
      expect(() => assertValue({ [s]: 1 })).toThrow(InvalidValueError)
    }
    const error = (() => {
      try {
        assertRecord({ title: 'a\ud800b' }, 'notes/n1')
      } catch (e) {
        return e as InvalidValueError
      }
      return undefined
    })()
    expect(error?.code).toBe('INVALID_VALUE')
    expect(error?.message).toMatch(/notes\/n1\.title/)
    expect(error?.message).toMatch(/surrogate/)
    for (const s of FINE) expect(() => assertRecord({ [s]: s, nested: [s] })).not.toThrow()
  })

  it('keys and map names are refused with INVALID_KEY when not well-formed, and keep their other rules', () => {
    for (const s of LONE) {
      expect(() => assertKey(s)).toThrow(InvalidKeyError)
      expect(() => assertMapName(s)).toThrow(InvalidKeyError)
    }
    for (const s of FINE) expect(() => assertKey(s)).not.toThrow()
    expect(() => assertKey('__proto__')).not.toThrow()
    expect(() => assertKey(42)).toThrow(InvalidKeyError)
    expect(() => assertKey('k'.repeat(1025))).toThrow(InvalidKeyError)
    expect(() => assertKey('k'.repeat(1024))).not.toThrow()
    expect(() => assertMapName('')).toThrow(InvalidKeyError)
    expect(() => assertMapName('m'.repeat(257))).toThrow(InvalidKeyError)
    expect(() => assertMapName('m'.repeat(256))).not.toThrow()
  })

  it('the protocol schemas refuse lone surrogates in keys, map names and field names', () => {
    // An ops batch is checked change by change (one malformed change is refused alone).
    const change = (key: string, map: string, field: string): unknown => ({ kind: 'lww', map, key, state: { fields: [[field, 1, stamp]], deleted: null } })
    expect(changeSchema.safeParse(change('k', 'm', 'f')).success).toBe(true)
    expect(changeSchema.safeParse(change('k\ud800', 'm', 'f')).success).toBe(false)
    expect(changeSchema.safeParse(change('k', 'm\udc00', 'f')).success).toBe(false)
    expect(changeSchema.safeParse(change('k', 'm', '\ud800f')).success).toBe(false)
    expect(() => parseChange(change('k\ud800', 'm', 'f'))).toThrow(InvalidMessageError)
    expect(clientMessageSchema.safeParse({ type: 'entries', sub: 1, path: '', entries: [['\ud800', '0123456789abcdef']] }).success).toBe(false)
  })

  it('the codec refuses a frame whose string bytes are not well-formed UTF-8 (what a lone surrogate becomes on the wire)', () => {
    // A short string msgpackr writes byte by byte: a lone surrogate becomes ED A0 80 (WTF-8).
    const wtf8 = Uint8Array.of(0xa4, 0x61, 0xed, 0xa0, 0x80)
    expect(() => decode(wtf8)).toThrow(DecodeError)
    expect(() => decode(Uint8Array.of(0xa2, 0xc0, 0x80))).toThrow(DecodeError) // overlong NUL
    expect(() => decode(Uint8Array.of(0xa1, 0xe2))).toThrow(DecodeError) // truncated sequence
    expect(() => decode(Uint8Array.of(0xa4, 0xf4, 0x90, 0x80, 0x80))).toThrow(DecodeError) // above U+10FFFF
    expect(() => decode(Uint8Array.of(0xa1, 0xff))).toThrow(DecodeError)
    // In a map key, too.
    expect(() => decode(Uint8Array.of(0x81, 0xa4, 0x61, 0xed, 0xb0, 0x80, 0x01))).toThrow(DecodeError)
    for (const s of FINE) expect(decode(encode(s))).toBe(s)
    expect(decode(encode('x'.repeat(300) + '€'))).toBe('x'.repeat(300) + '€')
  })

  it('encode refuses a message carrying a lone surrogate instead of sending replacement characters', () => {
    expect(() => encode({ s: 'a\ud800b' })).toThrow(InvalidValueError)
  })

  it('a raw ops frame with a lone surrogate never decodes into a message', () => {
    // What a client that bypasses the SDK (msgpack written by hand) could send.
    const head = encode({ type: 'ops', id: 7, changes: [{ kind: 'lww', map: 'm', key: 'k', state: { fields: [['f', 'ab', stamp]], deleted: null } }] })
    const at = indexOf(head, Uint8Array.of(0xa2, 0x61, 0x62))
    expect(at).toBeGreaterThan(0)
    // 'ab' (a2 61 62) becomes 'a' + U+D800 as WTF-8 (a4 61 ed a0 80): two bytes longer.
    const hostile = new Uint8Array(head.length + 2)
    hostile.set(head.subarray(0, at))
    hostile.set(Uint8Array.of(0xa4, 0x61, 0xed, 0xa0, 0x80), at)
    hostile.set(head.subarray(at + 3), at + 5)
    expect(() => decodeClientMessage(head)).not.toThrow()
    expect(() => decodeClientMessage(hostile)).toThrow(DecodeError)
  })

  it('a serialized error quoting a key cut mid-pair is well-formed, so it can still be sent', () => {
    const key = `${'k'.repeat(63)}\ud83d\ude00`
    const error = new InvalidKeyError(`key ${key.slice(0, 64)} is refused`, { key: key.slice(0, 64), nested: [key.slice(0, 64)] })
    const serialized = serializeError(error)
    expect(isWellFormed(serialized.message)).toBe(true)
    expect(serialized.message).toContain('\\ud83d')
    expect(() => encodeMessage({ type: 'error', error: serialized })).not.toThrow()
  })

  it('the UTF-8 check agrees with a fatal TextDecoder on random bytes (seeded)', () => {
    const seed = testSeed('utf8-validator')
    const random = prng(seed)
    const fatal = new TextDecoder('utf-8', { fatal: true })
    const interesting = [0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff, 0x8f, 0x90, 0x9f, 0xa0]
    for (let n = 0; n < 20_000; n++) {
      const bytes = new Uint8Array(Math.floor(random() * 8))
      for (let i = 0; i < bytes.length; i++) bytes[i] = random() < 0.7 ? (interesting[Math.floor(random() * interesting.length)] as number) : Math.floor(random() * 256)
      let expected = true
      try {
        fatal.decode(bytes)
      } catch {
        expected = false
      }
      if (isWellFormedUtf8(bytes, 0, bytes.length) !== expected) throw new Error(`disagree on ${Array.from(bytes, (b) => b.toString(16)).join(' ')}; replay with OUTPOST_SEED=${seed}`)
    }
  })
})

describe('depth: one limit from the write API to the stores and the wire', () => {
  it('accepts a field value nested exactly to the limit and refuses one level more, naming the limit', () => {
    expect(() => assertRecord({ body: nested(VALUE_LIMITS.maxDepth) })).not.toThrow()
    expect(() => assertValue(nested(VALUE_LIMITS.maxDepth))).not.toThrow()
    expect(() => assertRecord({ body: nested(VALUE_LIMITS.maxDepth + 1) })).toThrow(InvalidValueError)
    expect(() => assertRecord({ body: nested(VALUE_LIMITS.maxDepth + 1) })).toThrow(new RegExp(`${VALUE_LIMITS.maxDepth} levels`))
    expect(() => assertValue(nested(VALUE_LIMITS.maxDepth + 1))).toThrow(InvalidValueError)
  })

  it('a value at the limit fits every envelope: LWW and OR states, an outbox entry, a store commit', async () => {
    const value = nested(VALUE_LIMITS.maxDepth)
    const lww = lwwUpdateState({ body: value }, stamp)
    const or = orAddState(value, stamp)
    // The worker's outbox entry: { opId, change: { kind, map, key, state }, at } (deepest envelope Outpost builds).
    const outboxEntry = { opId: 1, change: { kind: 'lww', map: 'notes', key: 'n1', state: lww }, at: 0 }
    for (const stored of [lww, or, outboxEntry]) expect(() => assertStoredValue(stored)).not.toThrow()
    const store = new MemoryStore()
    await expect(
      store.commit({
        puts: [
          { collection: 'r/lww/notes', key: 'n1', value: lww as unknown as Value },
          { collection: 'r/or/tags', key: 't1', value: or as unknown as Value },
          { collection: 'outbox', key: '000000000000001', value: outboxEntry as unknown as Value },
        ],
      }),
    ).resolves.toBeDefined()
  })

  it('a value at the limit fits the wire in both directions under the default codec limits', () => {
    const value = nested(VALUE_LIMITS.maxDepth)
    const lww = lwwUpdateState({ body: value }, stamp)
    const or = orAddState(value, stamp)
    const ops = encodeMessage({ type: 'ops', id: 1, changes: [{ kind: 'lww', map: 'm', key: 'k', state: lww }, { kind: 'or', map: 'o', key: 'k', state: or }] })
    expect(() => decodeClientMessage(ops)).not.toThrow()
    const changes = encodeMessage({ type: 'changes', sub: 1, changes: [{ kind: 'lww', map: 'm', key: 'k', state: lww }] })
    expect(() => decodeServerMessage(changes)).not.toThrow()
    expect(() => scanFrame(encodeMessage({ type: 'topic-pub', id: 1, topic: 't', data: value }), DEFAULT_CODEC_LIMITS)).not.toThrow()
    expect(DEFAULT_CODEC_LIMITS.maxDepth).toBeGreaterThanOrEqual(VALUE_LIMITS.maxDepth + VALUE_LIMITS.envelopeDepth)
  })

  it('a stored entry deeper than the limit plus the envelope allowance is refused by the store', async () => {
    const store = new MemoryStore()
    const tooDeep = nested(VALUE_LIMITS.maxDepth + VALUE_LIMITS.envelopeDepth + 1)
    await expect(store.commit({ puts: [{ collection: 'c', key: 'k', value: tooDeep }] })).rejects.toThrow(InvalidValueError)
    await expect(store.commit({ puts: [{ collection: 'c', key: 'k', value: nested(VALUE_LIMITS.maxDepth + VALUE_LIMITS.envelopeDepth) }] })).resolves.toBeDefined()
  })
})

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return i
  }
  return -1
}

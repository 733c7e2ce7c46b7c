import { describe, expect, it } from 'vitest'
import {
  DecodeError,
  DecodeLimitError,
  FrameTooLargeError,
  InvalidMessageError,
  InvalidValueError,
  OutpostError,
} from '../src/errors'
import {
  DEFAULT_CODEC_LIMITS,
  decode,
  decodeClientMessage,
  decodeServerMessage,
  encode,
  encodeChecked,
  encodeMessage,
  parseChange,
} from '../src/protocol/codec'
import type { OpsMessage } from '../src/protocol/messages'
import { sampleChange, sampleClientMessages, sampleServerMessages } from '../src/testing/sample-messages'
import { valueDifference } from '../src/testing/store-suite'
import { prng, testSeed } from '../src/testing/random'
import { assertStoredValue } from '../src/value'

/** Defines `key` as an own data property (how `__proto__` becomes a plain field). */
function withKey(object: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
  return object
}

function roundTrip(value: unknown): unknown {
  return decode(encode(value))
}

/**
 * Runs `decode` on a hostile frame: it must throw `kind`, within 100 ms. The time is the
 * best of three tries, so a test runner competing for the CPU does not fail it.
 */
function expectRejected(bytes: Uint8Array, kind: new (...args: never[]) => OutpostError, limits?: Parameters<typeof decode>[1]): OutpostError {
  let thrown: unknown
  let best = Infinity
  for (let attempt = 0; attempt < 3 && best >= 100; attempt++) {
    const started = performance.now()
    thrown = undefined
    try {
      decode(bytes, limits)
    } catch (error) {
      thrown = error
    }
    best = Math.min(best, performance.now() - started)
  }
  expect(thrown, 'the frame was accepted').toBeInstanceOf(kind)
  expect(best).toBeLessThan(100)
  return thrown as OutpostError
}

function bytes(...parts: (number | readonly number[])[]): Uint8Array {
  return new Uint8Array(parts.flat())
}

const u32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]

describe('codec round trips', () => {
  it('keeps nested objects, arrays and every scalar kind', () => {
    const value = {
      nil: null,
      flags: [true, false],
      numbers: [0, 1, -1, 127, 128, -33, 65_536, 2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0.1, -1.5e-300, 1e300, Infinity, -Infinity],
      strings: ['', 'a', 'héllo 😀 日本語', 'x'.repeat(70_000)],
      nested: { a: { b: { c: [[[{ d: 'deep' }]]] } } },
      empty: { list: [], object: {} },
    }
    expect(valueDifference(roundTrip(value), value)).toBeNull()
  })

  it('keeps Date with millisecond precision, before and after the epoch', () => {
    const dates = [new Date(0), new Date(1_700_000_000_123), new Date(-1), new Date(-62_135_596_800_000), new Date(8.64e15)]
    const decoded = roundTrip(dates) as Date[]
    expect(valueDifference(decoded, dates)).toBeNull()
    for (const date of decoded) expect(date).toBeInstanceOf(Date)
  })

  it('keeps Uint8Array as a plain Uint8Array that owns its bytes, even when a Buffer went in', () => {
    const input = { plain: new Uint8Array([0, 1, 255]), fromBuffer: Buffer.from([9, 8, 7]), empty: new Uint8Array(0) }
    const frame = encode(input)
    const decoded = decode(frame) as Record<string, Uint8Array>
    expect(valueDifference(decoded, { plain: new Uint8Array([0, 1, 255]), fromBuffer: new Uint8Array([9, 8, 7]), empty: new Uint8Array(0) })).toBeNull()
    expect(Object.getPrototypeOf(decoded['fromBuffer'])).toBe(Uint8Array.prototype)
    // Reusing the receive buffer must not change decoded data.
    frame.fill(0)
    expect(Array.from(decoded['plain'] as Uint8Array)).toEqual([0, 1, 255])
  })

  it('keeps bigints of any size and sign, apart from numbers', () => {
    const values = [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 64n, 2n ** 70n, -(2n ** 70n) - 3n, 3n ** 500n, -(7n ** 300n)]
    const decoded = roundTrip(values) as bigint[]
    expect(decoded).toEqual(values)
    for (const value of decoded) expect(typeof value).toBe('bigint')
    expect(typeof roundTrip(5)).toBe('number')
  })

  it('keeps null fields, omits undefined fields, and leaves missing fields missing', () => {
    const decoded = roundTrip({ present: null, gone: undefined }) as Record<string, unknown>
    expect(Object.keys(decoded)).toEqual(['present'])
    expect(decoded['present']).toBeNull()
  })

  it('keeps __proto__, constructor, prototype and "" as plain own keys at any depth', () => {
    const inner = withKey({ constructor: { prototype: 1 }, '': 'empty' }, '__proto__', { polluted: true })
    const value = withKey({ prototype: [inner], nested: { deeper: withKey({}, '__proto__', null) } }, '__proto__', inner)
    const decoded = roundTrip(value) as Record<string, unknown>
    expect(valueDifference(decoded, value)).toBeNull()
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
    expect(Object.hasOwn(decoded, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    const parsed = JSON.parse('{"__proto__":{"__proto__":1},"constructor":"c"}') as unknown
    expect(valueDifference(roundTrip(parsed), parsed)).toBeNull()
  })

  it('turns -0 into 0 (msgpack writes it as the integer 0)', () => {
    expect(Object.is(roundTrip(-0), 0)).toBe(true)
  })

  it('refuses values that cannot be sent, with InvalidValueError', () => {
    const cycle: Record<string, unknown> = {}
    cycle['self'] = cycle
    for (const value of [undefined, [1, undefined], { f: () => 1 }, Symbol('s'), cycle, new Date(Number.NaN)]) {
      expect(() => encode(value), String(value)).toThrow(InvalidValueError)
    }
  })

  it('encodes protocol messages that decode back to equal, valid messages', () => {
    for (const message of Object.values(sampleClientMessages)) expect(valueDifference(decodeClientMessage(encodeMessage(message)), message)).toBeNull()
    for (const message of Object.values(sampleServerMessages)) expect(valueDifference(decodeServerMessage(encodeMessage(message)), message)).toBeNull()
  })

  it('accepts an ArrayBuffer (as a browser WebSocket delivers it)', () => {
    const frame = encode({ a: 1 })
    const buffer = frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength) as ArrayBuffer
    expect(decode(buffer)).toEqual({ a: 1 })
  })
})

describe('encodeChecked (values validated once, at the boundary)', () => {
  /** A random value of every kind `assertStoredValue` accepts, nested up to `depth`. */
  function randomValue(random: () => number, depth: number): unknown {
    const pick = Math.floor(random() * (depth > 0 ? 11 : 8))
    const text = (): string => ['', 'a', 'héllo 😀', '__proto__', 'x'.repeat(Math.floor(random() * 300))][Math.floor(random() * 5)] as string
    switch (pick) {
      case 0: return null
      case 1: return random() < 0.5
      case 2: return Math.floor((random() - 0.5) * 2 ** Math.floor(random() * 60))
      case 3: return (random() - 0.5) * 1e6
      case 4: return text()
      case 5: return BigInt(Math.floor(random() * 2 ** 53)) * (random() < 0.5 ? -(2n ** 70n) : 1n)
      case 6: return new Date(Math.floor((random() - 0.5) * 1e13))
      case 7: return Uint8Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256))
      case 8: return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth - 1))
      default: {
        const object: Record<string, unknown> = {}
        for (let i = Math.floor(random() * 5); i > 0; i--) withKey(object, text(), randomValue(random, depth - 1))
        return object
      }
    }
  }

  it('writes the bytes encode writes for every value assertStoredValue accepts, in a frame of its own', () => {
    const seed = testSeed('encode-checked')
    const random = prng(seed)
    for (let i = 0; i < 2_000; i++) {
      const value = randomValue(random, 4)
      assertStoredValue(value)
      const checked = encodeChecked(value)
      const expected = encode(value)
      expect([...checked], `case ${i} (seed ${seed})`).toEqual([...expected])
      // It owns its bytes: encoding something else does not change them.
      encodeChecked({ other: 'x'.repeat(i % 100) })
      expect([...checked], `case ${i} (seed ${seed})`).toEqual([...expected])
      expect(valueDifference(decode(checked, { maxFrameBytes: Infinity, maxDepth: 64, maxElements: Infinity }), value), `case ${i} (seed ${seed})`).toBeNull()
    }
  })
})

describe('message validation', () => {
  it('rejects a decoded frame that is not a client message, naming the bad field', () => {
    const bad = { ...sampleClientMessages.ops, id: -1 }
    let thrown: unknown
    try {
      decodeClientMessage(encode(bad))
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(InvalidMessageError)
    const issues = (thrown as InvalidMessageError).details?.['issues'] as string[]
    expect(issues.some((issue) => issue.startsWith('id:'))).toBe(true)
    expect((thrown as Error).message).toContain('"ops"')
  })

  it('accepts an ops batch with a malformed change and refuses that change alone through parseChange', () => {
    const bad = { kind: 'lww', map: 'todos', key: 7 }
    const good = sampleClientMessages.ops.changes[0]
    const message = decodeClientMessage(encode({ ...sampleClientMessages.ops, changes: [bad, good] }))
    expect(message.type).toBe('ops')
    const changes = (message as { changes: unknown[] }).changes
    expect(() => parseChange(changes[0])).toThrow(InvalidMessageError)
    try {
      parseChange(changes[0])
    } catch (error) {
      expect(((error as InvalidMessageError).details?.['issues'] as string[]).some((issue) => issue.startsWith('key:'))).toBe(true)
    }
    expect(parseChange(changes[1])).toEqual(good)
  })

  it('rejects server messages sent to the relay and vice versa', () => {
    expect(() => decodeClientMessage(encode(sampleServerMessages.welcome))).toThrow(InvalidMessageError)
    expect(() => decodeServerMessage(encode(sampleClientMessages.hello))).toThrow(InvalidMessageError)
    expect(() => decodeServerMessage(encode([1, 2]))).toThrow(InvalidMessageError)
    expect(() => decodeClientMessage(encode({ type: 'nope' }))).toThrow(InvalidMessageError)
  })

  it('checks limits before validating', () => {
    expect(() => decodeClientMessage(encode(sampleClientMessages.ops), { maxFrameBytes: 16 })).toThrow(FrameTooLargeError)
  })
})

describe('hostile frames', () => {
  it('rejects length headers that claim more than the frame holds', () => {
    const lies: [string, Uint8Array][] = [
      ['array32', bytes(0xdd, u32(0xffffffff))],
      ['array16', bytes(0xdc, 0xff, 0xff, 0xc0)],
      ['map32', bytes(0xdf, u32(0x7fffffff), 0xa1, 0x61)],
      ['str32', bytes(0xdb, u32(0xffffffff), 0x61)],
      ['bin32', bytes(0xc6, u32(0xfffffff0), 1, 2, 3)],
      ['ext32', bytes(0xc9, u32(0xffffffff), 0x42, 1)],
      ['nested array32', bytes(0x91, 0x91, 0xdd, u32(100_000), 0xc0)],
    ]
    for (const [name, frame] of lies) {
      const error = expectRejected(frame, DecodeLimitError)
      expect(error.message, name).toMatch(/length header says \d+ but only \d+ bytes remain/)
    }
  })

  it('rejects 100,000-deep nesting without recursing', () => {
    const frame = new Uint8Array(100_001).fill(0x91)
    frame[100_000] = 0xc0
    expectRejected(frame, DecodeLimitError)
  })

  it('accepts nesting up to maxDepth and no deeper', () => {
    const depth = (levels: number): Uint8Array => {
      const frame = new Uint8Array(levels + 1).fill(0x91)
      frame[levels] = 0xc0
      return frame
    }
    expect(() => decode(depth(DEFAULT_CODEC_LIMITS.maxDepth))).not.toThrow()
    expectRejected(depth(DEFAULT_CODEC_LIMITS.maxDepth + 1), DecodeLimitError)
  })

  it('rejects a 1 MB frame of empty maps (too many elements), flat or nested', () => {
    const flatCount = 1024 * 1024 - 5
    const flat = new Uint8Array(1024 * 1024).fill(0x80)
    flat.set([0xdd, ...u32(flatCount)])
    expectRejected(flat, DecodeLimitError)

    // 65,536 fixarrays of 15 empty maps: each header is honest, the total is not.
    const groups = 65_535
    const nested = new Uint8Array(5 + groups * 16)
    nested.set([0xdd, ...u32(groups)])
    for (let g = 0; g < groups; g++) {
      nested[5 + g * 16] = 0x9f
      nested.fill(0x80, 6 + g * 16, 5 + (g + 1) * 16)
    }
    expect(nested.length).toBeLessThanOrEqual(1024 * 1024)
    const error = expectRejected(nested, DecodeLimitError)
    expect(error.message).toContain('250000')
  })

  it('accepts exactly maxElements elements', () => {
    const n = DEFAULT_CODEC_LIMITS.maxElements
    const frame = new Uint8Array(5 + n).fill(0xc0)
    frame.set([0xdd, ...u32(n)])
    expect((decode(frame) as unknown[]).length).toBe(n)
    const over = new Uint8Array(6 + n).fill(0xc0)
    over.set([0xdd, ...u32(n + 1)])
    expectRejected(over, DecodeLimitError)
  })

  it('rejects oversize frames before looking inside them', () => {
    expectRejected(new Uint8Array(1024 * 1024 + 1), FrameTooLargeError)
    expectRejected(encode('x'.repeat(100)), FrameTooLargeError, { maxFrameBytes: 50 })
    expect(decode(encode('x'.repeat(100)), { maxFrameBytes: 200 })).toBe('x'.repeat(100))
  })

  it('rejects extension types it does not accept, the reserved byte, undefined and non-string map keys', () => {
    const frames: [string, Uint8Array][] = [
      ['fixext1 type 1', bytes(0xd4, 0x01, 0x00)],
      ['undefined marker', bytes(0xd4, 0x00, 0x00)],
      ['record definition', bytes(0xd4, 0x72, 0x40, 0x91, 0xa1, 0x61, 0x01)],
      ['set', bytes(0xd4, 0x73, 0x00, 0x91, 0x01)],
      ['error', bytes(0xd4, 0x65, 0x00, 0x92, 0xa1, 0x61, 0xa1, 0x62)],
      ['regexp', bytes(0xd4, 0x78, 0x00, 0x92, 0xa1, 0x61, 0xa0)],
      ['typed array', bytes(0xc7, 0x03, 0x74, 0x01, 0x01, 0x02)],
      ['ext8 type 0x70', bytes(0xc7, 0x01, 0x70, 0x00)],
      ['0xc1', bytes(0xc1)],
      ['0xc1 inside', bytes(0x92, 0x01, 0xc1)],
      ['timestamp of 2 bytes', bytes(0xd5, 0xff, 0x00, 0x01)],
      ['empty bigint', bytes(0xc7, 0x00, 0x42)],
      ['integer map key', bytes(0x81, 0x01, 0x02)],
      ['array map key', bytes(0x81, 0x90, 0x02)],
      ['empty frame', bytes()],
    ]
    for (const [name, frame] of frames) {
      const error = expectRejected(frame, DecodeError)
      expect(error, name).toBeInstanceOf(DecodeError)
    }
  })

  it('rejects a timestamp outside the range of Date', () => {
    // timestamp 96: nanoseconds 0, seconds 2^62.
    expectRejected(bytes(0xc7, 12, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0), DecodeError)
    expectRejected(bytes(0xc7, 12, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xf8, 0, 0, 0, 0, 0), DecodeError)
    // timestamp 64 and 96 with 1e9 nanoseconds (a second that does not exist).
    expectRejected(bytes(0xd7, 0xff, ...u32(1_000_000_000 << 2), 0, 0, 0, 0), DecodeError)
    expectRejected(bytes(0xc7, 12, 0xff, ...u32(1_000_000_000), 0, 0, 0, 0, 0, 0, 0, 1), DecodeError)
    // The largest valid 96-bit timestamps still decode.
    expect(decode(encode(new Date(-8.64e15)))).toEqual(new Date(-8.64e15))
  })

  it('rejects every truncation of a valid frame', () => {
    const frame = encode(sampleClientMessages.ops)
    for (let end = 0; end < frame.length; end++) {
      const error = expectRejected(frame.subarray(0, end), OutpostError)
      expect(error instanceof DecodeError || error instanceof DecodeLimitError, `prefix of ${end} bytes`).toBe(true)
    }
  })

  it('rejects trailing bytes after the value', () => {
    const frame = encode({ a: 1 })
    expectRejected(bytes(Array.from(frame), 0x00), DecodeError)
    expectRejected(bytes(Array.from(frame), Array.from(frame)), DecodeError)
  })
})


describe('fuzz', () => {
  const seed = process.env['OUTPOST_SEED'] !== undefined ? Number(process.env['OUTPOST_SEED']) : 0x5eed_c0de
  // Header bytes make random frames reach deep into the scanner instead of stopping at byte one.
  const interesting = [0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc6, 0xc7, 0xc9, 0xcb, 0xcf, 0xd3, 0xd4, 0xd6, 0xd7, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff, 0x42, 0x00, 0x72, 0x73]

  it(`decode returns or throws an OutpostError for random and mutated frames (seed ${seed})`, () => {
    const random = prng(seed)
    const pick = (n: number): number => Math.floor(random() * n)
    const valid = [...Object.values(sampleClientMessages), ...Object.values(sampleServerMessages)].map((message) => encode(message))
    valid.push(encode({ big: 2n ** 90n, date: new Date(5), bytes: new Uint8Array([1, 2, 3]), deep: [[[[{ a: [1] }]]]] }))
    let decoded = 0
    const cases = 20_000
    const started = performance.now()
    for (let i = 0; i < cases; i++) {
      let frame: Uint8Array
      if (i % 2 === 0) {
        frame = new Uint8Array(pick(48))
        for (let j = 0; j < frame.length; j++) frame[j] = random() < 0.4 ? (interesting[pick(interesting.length)] as number) : pick(256)
      } else {
        const base = valid[pick(valid.length)] as Uint8Array
        const mutated = Array.from(base)
        const edits = 1 + pick(4)
        for (let e = 0; e < edits; e++) {
          const at = pick(mutated.length + 1)
          const what = pick(4)
          if (what === 0) mutated[at] = pick(256)
          else if (what === 1) mutated.splice(at, 0, interesting[pick(interesting.length)] as number)
          else if (what === 2) mutated.splice(at, 1 + pick(3))
          else mutated.length = at
        }
        frame = new Uint8Array(mutated)
      }
      try {
        decode(frame)
        decoded++
      } catch (error) {
        if (!(error instanceof OutpostError)) {
          throw new Error(`case ${i} (seed ${seed}, replay with OUTPOST_SEED=${seed}) threw ${String(error)} for ${Buffer.from(frame).toString('hex')}`)
        }
      }
    }
    console.log(`codec fuzz: seed ${seed}, ${cases} cases, ${decoded} decoded, ${(performance.now() - started).toFixed(0)} ms`)
    expect(decoded).toBeGreaterThan(0)
  })
})

describe('throughput (printed, not asserted)', () => {
  it('encodes and decodes a typical 100-change ops message', () => {
    const message: OpsMessage = { type: 'ops', id: 1, changes: Array.from({ length: 100 }, (_, i) => sampleChange('todos', `todo-${i}`, i)) }
    const frame = encodeMessage(message)
    const rounds = 300
    let started = performance.now()
    for (let i = 0; i < rounds; i++) encodeMessage(message)
    const encodeMs = (performance.now() - started) / rounds
    started = performance.now()
    for (let i = 0; i < rounds; i++) decodeClientMessage(frame)
    const decodeMs = (performance.now() - started) / rounds
    started = performance.now()
    for (let i = 0; i < rounds; i++) decode(frame)
    const rawMs = (performance.now() - started) / rounds
    console.log(
      `100-change ops frame: ${frame.length} bytes; encode ${(1000 / encodeMs).toFixed(0)} msg/s, decode+scan ${(1000 / rawMs).toFixed(0)} msg/s, decode+scan+validate ${(1000 / decodeMs).toFixed(0)} msg/s`,
    )
    expect(valueDifference(decodeClientMessage(frame), message)).toBeNull()
  })
})

/**
 * Wire v2 (packed change lists): what the frames hold, that the messages stay the same,
 * how v1 and v2 peers tell the forms apart, and that each malformed packed batch is
 * refused with a typed error that names the problem.
 */
import { describe, expect, it } from 'vitest'
import { encodeStamp } from '../src/clock'
import { InvalidMessageError } from '../src/errors'
import { decode, decodeClientMessage, decodeServerMessage, encode, encodeMessage, parseChange } from '../src/protocol/codec'
import { negotiateVersion } from '../src/protocol/guards'
import { PROTOCOL_VERSION, PROTOCOL_VERSIONS, type ChangesMessage, type EntriesMessage, type NodesMessage, type OpsMessage } from '../src/protocol/messages'
import { packChanges } from '../src/protocol/change-batch'
import { sampleChange, sampleClientMessages, sampleServerMessages } from '../src/testing/sample-messages'
import { valueDifference } from '../src/testing/store-suite'
import type { Change, ReplicaId, Stamp } from '../src/types'

const stampAt = (wall: number, counter: number, replica: string): Stamp => encodeStamp({ wall, counter, replica: replica as ReplicaId })

/** A record as `set` writes it: the tombstone one tick before the fields, which share a stamp. */
function setChange(key: string, wall: number, replica = 'device-1'): Change {
  const fields = stampAt(wall, 1, replica)
  return {
    kind: 'lww',
    map: 'todos',
    key,
    state: {
      fields: [
        ['title', `Task ${key}`, fields],
        ['done', false, fields],
      ],
      deleted: stampAt(wall, 0, replica),
    },
  }
}

/** The data of a frame as sent (before any unpacking). */
function frameData(frame: Uint8Array): Record<string, unknown> {
  return decode(frame) as Record<string, unknown>
}

/** A `changes` frame whose batch is `batch` (written by hand to test the reader). */
function changesFrame(batch: unknown): Uint8Array {
  return encode({ type: 'changes', sub: 1, batch })
}

function expectMalformed(batch: unknown, fragment: RegExp): void {
  let thrown: unknown
  try {
    decodeServerMessage(changesFrame(batch), undefined, 2)
  } catch (error) {
    thrown = error
  }
  expect(thrown, 'the batch was accepted').toBeInstanceOf(InvalidMessageError)
  expect((thrown as InvalidMessageError).code).toBe('INVALID_MESSAGE')
  expect((thrown as Error).message).toMatch(fragment)
}

describe('negotiation', () => {
  it('speaks versions 1 and 2 and prefers 2; a v1-only peer gets 1', () => {
    expect(PROTOCOL_VERSIONS).toEqual([1, 2])
    expect(PROTOCOL_VERSION).toBe(2)
    expect(negotiateVersion([1, 2])).toBe(2)
    expect(negotiateVersion([1])).toBe(1)
    expect(negotiateVersion([2, 7])).toBe(2)
  })
})

describe('v2 frames', () => {
  it('carry a batch instead of the change list, with each replica, map and field name once', () => {
    const changes = [setChange('a', 1_700_000_000_000), setChange('b', 1_700_000_000_003), setChange('c', 1_700_000_000_003, 'device-2')]
    const data = frameData(encodeMessage({ type: 'changes', sub: 4, changes }, 2))
    expect(Object.keys(data).sort()).toEqual(['batch', 'sub', 'type'])
    const [format, base, replicas, maps, names, stamps, records] = data['batch'] as unknown[]
    expect(format).toBe(1)
    expect(base).toBe(1_700_000_000_000)
    expect(replicas).toEqual(['device-1', 'device-2'])
    expect(maps).toEqual(['todos'])
    expect(names).toEqual(['title', 'done'])
    // Per stamp: zigzag wall delta, counter, replica index; per record the tombstone, then the fields' shared stamp.
    expect(Array.from(stamps as Uint8Array)).toEqual([0, 0, 0, 0, 1, 0, 6, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1])
    // lww with a tombstone and a shared stamp (4 | 8), map 0, key, then (name, value) pairs.
    expect(records).toEqual([
      [12, 0, 'a', 0, 'Task a', 1, false],
      [12, 0, 'b', 0, 'Task b', 1, false],
      [12, 0, 'c', 0, 'Task c', 1, false],
    ])
  })

  it('decode to the very message that was sent, for every sample message', () => {
    for (const message of Object.values(sampleClientMessages)) {
      expect(valueDifference(decodeClientMessage(encodeMessage(message, 2), undefined, 2), message)).toBeNull()
    }
    for (const message of Object.values(sampleServerMessages)) {
      expect(valueDifference(decodeServerMessage(encodeMessage(message, 2), undefined, 2), message)).toBeNull()
    }
  })

  it('keep per-field stamps when fields differ, stamps at the ends of their range, and every value type', () => {
    const change: Change = {
      kind: 'lww',
      map: 'm',
      key: '__proto__',
      state: {
        fields: [
          ['', 1, stampAt(0, 0, 'r')],
          ['__proto__', { nested: [1n, new Date(5), new Uint8Array([1])] }, stampAt(0, 0xffff, 'r')],
          ['x', null, stampAt(36 ** 10 - 1, 0, 'ü')],
        ],
        deleted: stampAt(36 ** 10 - 1, 0, 'r'.repeat(128)),
      },
    }
    const message: ChangesMessage = { type: 'changes', sub: 1, changes: [change] }
    expect(frameData(encodeMessage(message, 2))).toHaveProperty('batch')
    expect(valueDifference(decodeServerMessage(encodeMessage(message, 2), undefined, 2), message)).toBeNull()
  })

  it('send a list with a stamp no clock wrote as v1 does, so the receiver judges it as in v1', () => {
    const odd: Change = { kind: 'or', map: 'tags', key: 't', state: { adds: [['not a stamp' as Stamp, 'red']], removes: [] } }
    const message: ChangesMessage = { type: 'changes', sub: 1, changes: [setChange('a', 1), odd] }
    expect(frameData(encodeMessage(message, 2))).toHaveProperty('changes')
    expect(valueDifference(decodeServerMessage(encodeMessage(message, 2), undefined, 2), message)).toBeNull()
  })

  it('are never larger than v1, and much smaller for records as apps write them', () => {
    const changes = Array.from({ length: 200 }, (_, i) => setChange(`todo-${i}`, 1_700_000_000_000 + i * 17))
    const v1 = encodeMessage({ type: 'ops', id: 1, changes }, 1).length
    const v2 = encodeMessage({ type: 'ops', id: 1, changes }, 2).length
    expect(v2).toBeLessThan(v1 / 2)
  })

  it('send an empty list, or a list with something that is not a change, as v1 does (and v2 readers read it)', () => {
    const empty: ChangesMessage = { type: 'changes', sub: 1, changes: [], moveOut: ['k'] }
    expect(frameData(encodeMessage(empty, 2))).toHaveProperty('changes')
    expect(valueDifference(decodeServerMessage(encodeMessage(empty, 2), undefined, 2), empty)).toBeNull()
    const odd = { type: 'ops', id: 3, changes: [sampleChange('todos', 't1'), { kind: 'lww', map: 'todos', key: 7, state: {} }] } as unknown as OpsMessage
    const data = frameData(encodeMessage(odd, 2))
    expect(data).toHaveProperty('changes')
    const decoded = decodeClientMessage(encodeMessage(odd, 2), undefined, 2) as OpsMessage
    // As in v1: the malformed change is refused alone, the one beside it is accepted.
    expect(valueDifference(parseChange(decoded.changes[0]), sampleChange('todos', 't1'))).toBeNull()
    expect(() => parseChange(decoded.changes[1])).toThrow(InvalidMessageError)
  })

  it('refuse one change of an ops batch that breaks a rule alone, with the message v1 gives', () => {
    const bad: Change = { ...setChange('k', 1), map: '' }
    const message: OpsMessage = { type: 'ops', id: 9, changes: [setChange('a', 1), bad] }
    const v1 = decodeClientMessage(encodeMessage(message, 1), undefined, 1) as OpsMessage
    const v2 = decodeClientMessage(encodeMessage(message, 2), undefined, 2) as OpsMessage
    expect(valueDifference(parseChange(v2.changes[0]), setChange('a', 1))).toBeNull()
    const refusal = (change: unknown): string => {
      try {
        parseChange(change)
      } catch (error) {
        return (error as Error).message
      }
      return 'accepted'
    }
    expect(refusal(v2.changes[1])).toBe(refusal(v1.changes[1]))
    expect(refusal(v2.changes[1])).not.toBe('accepted')
  })

  it('make a whole changes message invalid when one change breaks a rule (as its schema does in v1)', () => {
    const message: ChangesMessage = { type: 'changes', sub: 1, changes: [setChange('a', 1), { ...setChange('b', 1), key: 'k'.repeat(1025) }] }
    expect(() => decodeServerMessage(encodeMessage(message, 1), undefined, 1)).toThrow(InvalidMessageError)
    expect(() => decodeServerMessage(encodeMessage(message, 2), undefined, 2)).toThrow(/changes\[1\]\.key/)
  })

  it('are refused by a v1 reader with INVALID_MESSAGE (a v1 session never receives one)', () => {
    const changes = [setChange('a', 1)]
    expect(() => decodeServerMessage(encodeMessage({ type: 'changes', sub: 1, changes }, 2), undefined, 1)).toThrow(InvalidMessageError)
    expect(() => decodeClientMessage(encodeMessage({ type: 'ops', id: 1, changes }, 2), undefined, 1)).toThrow(InvalidMessageError)
  })
})

describe('packed reconciliation lists', () => {
  const hash = (i: number): string => (BigInt(i) * 0x9e3779b97f4a7c15n % 2n ** 64n).toString(16).padStart(16, '0')
  const nodes = Array.from({ length: 16 }, (_, i) => ({ path: `a${i.toString(16)}`, hash: hash(i), count: i * 7 }))

  it('carry Merkle nodes as paths, 8-byte hashes and counts, and read back the same nodes', () => {
    for (const message of [{ type: 'nodes', sub: 2, nodes, more: true } as const, { type: 'reconcile', sub: 2, nodes } as const]) {
      const frame = encodeMessage(message, 2)
      const [format, paths, hashes, counts] = frameData(frame)['batch'] as unknown[]
      expect([format, paths, (hashes as Uint8Array).length, counts]).toEqual([1, nodes.map((n) => n.path), 16 * 8, nodes.map((n) => n.count)])
      const decoded = message.type === 'nodes' ? decodeServerMessage(frame, undefined, 2) : decodeClientMessage(frame, undefined, 2)
      expect(valueDifference(decoded, message)).toBeNull()
      expect(frame.length).toBeLessThan(encodeMessage(message, 1).length / 2.5)
    }
  })

  it('carry entries with their newest stamps, nulls and pairs, and read back the same entries', () => {
    const entries = Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? [`k${i}`, hash(i)] : i % 3 === 1 ? [`k${i}`, hash(i), null] : [`k${i}`, hash(i), stampAt(1_700_000_000_000 + i, i, 'device-1')])) as EntriesMessage['entries']
    const stamped = entries.map(([key, digest], i) => [key, digest, stampAt(1_700_000_000_000 + i, 0, i % 2 === 0 ? 'a' : 'b')]) as EntriesMessage['entries']
    for (const [list, ratio] of [[entries, 0.6], [stamped, 0.5]] as const) {
      const message: EntriesMessage = { type: 'entries', sub: 1, path: '0a', entries: list }
      const frame = encodeMessage(message, 2)
      expect(frameData(frame)).toHaveProperty('batch')
      expect(valueDifference(decodeClientMessage(frame, undefined, 2), message)).toBeNull()
      expect(frame.length).toBeLessThan(encodeMessage(message, 1).length * ratio)
    }
    // Every entry stamped: no marker bytes.
    expect((frameData(encodeMessage({ type: 'entries', sub: 1, path: '', entries: stamped }, 2))['batch'] as unknown[])[6]).toBeNull()
  })

  it('travel as in v1 when short, or when a hash is not 16 lowercase hex characters', () => {
    expect(frameData(encodeMessage({ type: 'nodes', sub: 1, nodes: nodes.slice(0, 3) }, 2))).toHaveProperty('nodes')
    const upper: NodesMessage = { type: 'nodes', sub: 1, nodes: nodes.map((n, i) => (i === 5 ? { ...n, hash: n.hash.toUpperCase().padStart(16, 'F') } : n)) }
    expect(frameData(encodeMessage(upper, 2))).toHaveProperty('nodes')
    expect(valueDifference(decodeServerMessage(encodeMessage(upper, 2), undefined, 2), upper)).toBeNull()
  })

  it('refuse malformed batches with INVALID_MESSAGE', () => {
    const bad = (type: 'nodes' | 'entries', batch: unknown, fragment: RegExp): void => {
      const frame = encode({ type, sub: 1, path: '', batch })
      const read = (): unknown => (type === 'nodes' ? decodeServerMessage(frame, undefined, 2) : decodeClientMessage(frame, undefined, 2))
      expect(read).toThrow(InvalidMessageError)
      expect(read).toThrow(fragment)
    }
    bad('nodes', [2, [], new Uint8Array(0), []], /node batch must be/)
    bad('nodes', [1, ['a'], new Uint8Array(7), [1]], /1 paths need as many counts and 8 hash bytes/)
    bad('nodes', [1, ['a'], new Uint8Array(8), []], /1 paths need/)
    bad('entries', [1, 0, [], ['k'], new Uint8Array(8), new Uint8Array(0), new Uint8Array([3])], /marker 3/)
    bad('entries', [1, 0, [], ['k'], new Uint8Array(8), new Uint8Array(0), null], /ends inside a stamp/)
    bad('entries', [1, 0, [], ['k'], new Uint8Array(8), new Uint8Array([0, 0, 0]), new Uint8Array([0])], /more stamps than the entries use/)
    bad('entries', [1, 0, [], ['k'], new Uint8Array(9), new Uint8Array(0), null], /1 keys need 8 digest bytes/)
    // Unpacked fine but not a valid message: the schema says so.
    bad('entries', [1, 0, [], [7], new Uint8Array(8), new Uint8Array(0), new Uint8Array([0])], /not a valid client message/)
  })
})

describe('malformed packed batches', () => {
  const good = packChanges([setChange('a', 1_700_000_000_000)]) as unknown[]
  const stream = (...bytes: number[]): Uint8Array => new Uint8Array(bytes)
  const withItem = (index: number, value: unknown): unknown[] => good.map((item, i) => (i === index ? value : item))
  /** A batch with one record and the given stamp stream (one replica, one map, one field name). */
  const withRecord = (record: unknown[], stamps = stream(0, 0, 0)): unknown[] => good.map((item, i) => (i === 5 ? stamps : i === 6 ? [record] : item))

  it('are refused with INVALID_MESSAGE naming the problem', () => {
    expectMalformed('batch', /a batch must be a list of 7 items/)
    expectMalformed(good.slice(0, 6), /a batch must be a list of 7 items/)
    expectMalformed(withItem(0, 2), /format 2 is not one this build reads/)
    expectMalformed(withItem(1, -1), /base wall time/)
    expectMalformed(withItem(1, 1.5), /base wall time/)
    expectMalformed(withItem(2, ['ok', 3]), /replica table must be a list of strings/)
    expectMalformed(withItem(4, 'names'), /field-name table must be a list of strings/)
    expectMalformed(withItem(5, [0, 0, 0]), /stamp stream must be bytes/)
    expectMalformed(withItem(6, {}), /records must be a list/)
    expectMalformed(withItem(6, ['record']), /records\[0\]: a record must be a list/)
    expectMalformed(withRecord([3, 0, 'k']), /record kind 3/)
    expectMalformed(withRecord([0, 5, 'k']), /map index 5 is outside its table of 1/)
    expectMalformed(withRecord([0, 0, 7]), /the key must be a string/)
    expectMalformed(withRecord([8, 0, 'k', 9, 'v']), /field name index 9/)
    expectMalformed(withRecord([8, 0, 'k', 0]), /end in \(name, value\) pairs/)
    expectMalformed(withRecord([8, 0, 'k']), /shared stamp without fields/)
    expectMalformed(withRecord([8, 0, 'k', 0, 'v'], stream(0, 0)), /stream ends inside a stamp/)
    expectMalformed(withRecord([8, 0, 'k', 0, 'v'], stream(0, 0, 0, 0)), /more stamps than the records use/)
    expectMalformed(withRecord([8, 0, 'k', 0, 'v'], stream(0, 0, 1)), /replica index 1 is outside its table of 1/)
    expectMalformed(withRecord([8, 0, 'k', 0, 'v'], stream(0, 0x80, 0x80, 0x04, 0)), /counter 65536 is over 65535/)
    expectMalformed(withRecord([8, 0, 'k', 0, 'v'], stream(0x80, 0x00, 0, 0)), /overlong/)
    expectMalformed(withRecord([8, 0, 'k', 0, 'v'], stream(...Array<number>(9).fill(0xff))), /longer than 8 bytes/)
    // The base is 1_700_000_000_000: a delta of -(base + 1) (zigzag 2·base + 1) lands before the epoch.
    expectMalformed(withRecord([8, 0, 'k', 0, 'v'], stream(...varint(2 * 1_700_000_000_000 + 1), 0, 0)), /wall time -1 is outside/)
    expectMalformed(withRecord([1, 0, 'k', 1e9, 0]), /add count must be an integer/)
    expectMalformed(withRecord([1, 0, 'k', 1, 0]), /1 adds must have 1 values/)
    expectMalformed(withRecord([1, 0, 'k', 0, 1e12], stream()), /stream ends inside a stamp/)
    expectMalformed(withRecord([2, 0, 'k', 0, 1]), /ends where decrements was expected/)
    expectMalformed(withItem(2, ['']).map((item, i) => (i === 6 ? [[8, 0, 'k', 0, 'v']] : item)), /not a valid replica id/)
  })

  it('name the record they fail in, past the first one too (the place is spelt out only for the error)', () => {
    const two = (second: unknown[], stamps: Uint8Array): unknown[] => good.map((item, i) => (i === 5 ? stamps : i === 6 ? [[8, 0, 'a', 0, 'v'], second] : item))
    expectMalformed(two([8, 0, 'k', 0, 'v'], stream(0, 0, 0, 0, 0)), /records\[1\]: the stamp stream ends inside a stamp/)
    expectMalformed(two([8, 0, 'k', 0, 'v'], stream(0, 0, 0, 0, 0, 1)), /records\[1\]: replica index 1 is outside its table of 1/)
    expectMalformed(two([8, 0, 'k', 0], stream(0, 0, 0)), /records\[1\]: a record must end in \(name, value\) pairs/)
    expectMalformed(two([8, 0, 'k', 0, 'v', 0], stream(0, 0, 0, 0, 0, 0)), /records\[1\]: a record must end in \(name, value\) pairs/)
    expectMalformed(two([8, 0, 'k', 'x'.repeat(8)], stream(0, 0, 0, 0, 0, 0)), /records\[1\]: a record must end/)
    expectMalformed(two([1, 0, 'k', 2, 0, 'v'], stream(0, 0, 0)), /records\[1\]: a set with 2 adds must have 2 values/)
  })

  it('make a whole changes message invalid when a change breaks a rule, with the path of the rule', () => {
    const counter = (state: unknown[]): unknown[] => good.map((item, i) => (i === 5 ? stream(0, 0, 0) : i === 6 ? [[8, 0, 'a', 0, 'v'], [2, 0, 'c', ...state]] : item))
    expectMalformed(counter(['', 1, 0]), /changes\[1\]\.state\[0\]\[0\]: a replica id must be 1\.\.128 characters/)
    expectMalformed(counter(['r1', 1, 0, 'r'.repeat(129), 1, 0]), /changes\[1\]\.state\[1\]\[0\]: a replica id/)
    expectMalformed(counter(['r1', -1, 0]), /changes\[1\]\.state\[0\]: totals must be finite numbers/)
    const map = good.map((item, i) => (i === 3 ? ['m'.repeat(1000)] : item))
    expectMalformed(map, /changes\[0\]\.map: must be 1\.\./)
  })

  it('leave the other fields of a changes message to its schema, and the length of its list', () => {
    const frame = (fields: Record<string, unknown>, batch: unknown = good): Uint8Array => encode({ type: 'changes', sub: 1, ...fields, batch })
    const refused = (bytes: Uint8Array, fragment: RegExp, version = 2): void => {
      // Frame limits wide enough for a v1 frame of 10,001 changes: the message's schema refuses it, not the codec.
      const read = (): unknown => decodeServerMessage(bytes, { maxFrameBytes: 8 * 2 ** 20 }, version)
      expect(read).toThrow(InvalidMessageError)
      expect(read).toThrow(fragment)
    }
    refused(frame({ sub: -1 }), /not a valid server message \(sub: /)
    refused(frame({ paced: false }), /paced: /)
    refused(frame({ frame: 0 }), /frame: /)
    refused(frame({ moveOut: ['k'.repeat(1025)] }), /moveOut\[0\]: /)
    // Every field checked, unknown ones dropped, and the changes taken as they were unpacked.
    const message = decodeServerMessage(frame({ paced: true, frame: 3, seq: 9, moveOut: ['z'], extra: 1 }), undefined, 2)
    expect(message).toEqual({ type: 'changes', sub: 1, paced: true, frame: 3, seq: 9, moveOut: ['z'], changes: [setChange('a', 1_700_000_000_000)] })
    // One change over the limit of a frame: refused as v1's schema refuses it.
    const many = Array.from({ length: 10_001 }, (_, i) => setChange(`k${i}`, 1_700_000_000_000 + i))
    refused(encodeMessage({ type: 'changes', sub: 1, changes: many } as ChangesMessage, 2), /changes: Too big/)
    refused(encodeMessage({ type: 'changes', sub: 1, changes: many } as ChangesMessage, 1), /changes: Too big/, 1)
    expect((decodeServerMessage(encodeMessage({ type: 'changes', sub: 1, changes: many.slice(0, 10_000) }, 2), undefined, 2) as ChangesMessage).changes).toHaveLength(10_000)
  })

  it('of ops are not server messages', () => {
    expect(() => decodeServerMessage(encodeMessage({ type: 'ops', id: 1, changes: [setChange('a', 1)] }, 2), undefined, 2)).toThrow(/not a valid server message/)
  })

  it('with both changes and batch are refused', () => {
    expect(() => decodeServerMessage(encode({ type: 'changes', sub: 1, changes: [], batch: good }), undefined, 2)).toThrow(/both changes and batch/)
  })
})

/** `value` as the stream writes it (7 bits a byte, least significant first). */
function varint(value: number): number[] {
  const bytes: number[] = []
  let rest = value
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  bytes.push(rest)
  return bytes
}

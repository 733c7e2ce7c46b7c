/**
 * Value rules on the wire, with raw clients that bypass the SDK's write-time checks:
 * - a frame carrying a string that is not well-formed UTF-8 (how a lone surrogate is
 *   written by msgpack encoders) is refused whole, so nothing of it is stored; before,
 *   the relay stored U+FFFD while the writer kept its lone surrogate (a silent divergence);
 * - a field value nested exactly to `VALUE_LIMITS.maxDepth` is committed, stored and
 *   served to a subscriber; one level more is refused with INVALID_VALUE naming the limit,
 *   and the other changes of the batch still commit.
 */
import { VALUE_LIMITS, encodeMessage, lwwView, type Change, type ChangesMessage, type ErrorMessage, type LwwRecordState, type Value } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay() {
  const started = await startRelay()
  cleanups.push(started.stop)
  return started.relay
}

async function connect(url: string) {
  const { client } = await TestClient.connect(url)
  cleanups.push(() => client.close())
  return client
}

/** `frame` with the bytes of string `placeholder` (1–31 ASCII characters) replaced by `raw` of the same length. */
function patchString(frame: Uint8Array, placeholder: string, raw: readonly number[]): Uint8Array {
  const needle = [0xa0 | placeholder.length, ...Array.from(placeholder, (c) => c.charCodeAt(0))]
  if (raw.length !== placeholder.length) throw new Error('raw bytes must have the placeholder length')
  outer: for (let i = 0; i + needle.length <= frame.length; i++) {
    for (let j = 0; j < needle.length; j++) if (frame[i + j] !== needle[j]) continue outer
    const out = new Uint8Array(frame)
    out.set(raw, i + 1)
    return out
  }
  throw new Error(`placeholder ${placeholder} not found`)
}

/** Every record of `map` a fresh subscriber receives. */
async function readMap(url: string, map: string): Promise<Map<string, unknown>> {
  const reader = await connect(url)
  reader.send({ type: 'subscribe', sub: 1, shape: { map } })
  await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
  const out = new Map<string, unknown>()
  for (const m of reader.all<ChangesMessage>((m) => m.type === 'changes' && m.sub === 1)) {
    for (const change of m.changes) out.set(change.key, lwwView(change.state as LwwRecordState))
  }
  return out
}

function nested(levels: number): Value {
  let value: Value = 'leaf'
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

// ED A0 80 is U+D800 written as if it were a code point (WTF-8): what msgpackr writes for a short lone surrogate.
const LONE_SURROGATE = [0xed, 0xa0, 0x80]

describe('well-formed strings on the wire', () => {
  it('refuses ops frames whose value, field name, key or map name is not well-formed UTF-8, and stores nothing of them', async () => {
    const r = await relay()
    const client = await connect(r.url)
    const frames = [
      patchString(encodeMessage({ type: 'ops', id: 1, changes: [update(client.clock, 'notes', 'n1', { title: 'ZZZ' })] }), 'ZZZ', LONE_SURROGATE),
      patchString(encodeMessage({ type: 'ops', id: 2, changes: [update(client.clock, 'notes', 'n2', { ZZZ: 'x' })] }), 'ZZZ', LONE_SURROGATE),
      patchString(encodeMessage({ type: 'ops', id: 3, changes: [update(client.clock, 'notes', 'ZZZ', { title: 'x' })] }), 'ZZZ', LONE_SURROGATE),
      patchString(encodeMessage({ type: 'ops', id: 4, changes: [update(client.clock, 'ZZZ', 'n4', { title: 'x' })] }), 'ZZZ', LONE_SURROGATE),
    ]
    for (const frame of frames) client.sendRaw(frame)
    // A well-formed batch after them is still served: the refusals cost the connection nothing else.
    const ok = await client.ops([update(client.clock, 'notes', 'fine', { title: 'caf\u00e9 \ud83d\ude00' })])
    expect(ok.results).toEqual([null])
    const errors = client.all<ErrorMessage>((m) => m.type === 'error')
    expect(errors.map((e) => e.error.code)).toEqual(['DECODE_FAILED', 'DECODE_FAILED', 'DECODE_FAILED', 'DECODE_FAILED'])
    expect(errors[0]?.error.message).toMatch(/UTF-8/)
    expect(client.all((m) => m.type === 'ack' && m.id !== ok.id)).toEqual([])
    expect(await readMap(r.url, 'notes')).toEqual(new Map([['fine', { title: 'caf\u00e9 \ud83d\ude00' }]]))
    expect((await readMap(r.url, '\ufffd\ufffd\ufffd')).size).toBe(0)
  })
})

describe('depth on the wire', () => {
  it('commits and serves a field value nested exactly to the limit; refuses one level more with INVALID_VALUE naming the limit', async () => {
    const r = await relay()
    const client = await connect(r.url)
    // Built by hand: the SDK's state builders refuse the second one before it could be sent.
    const raw = (key: string, body: Value): Change => ({ kind: 'lww', map: 'deep', key, state: { fields: [['body', body, client.clock.tick()]], deleted: null } })
    const ack = await client.ops([raw('at-limit', nested(VALUE_LIMITS.maxDepth)), raw('too-deep', nested(VALUE_LIMITS.maxDepth + 1)), raw('plain', 'x')])
    expect(ack.results[0]).toBeNull()
    expect(ack.results[1]?.code).toBe('INVALID_VALUE')
    expect(ack.results[1]?.message).toContain(`${VALUE_LIMITS.maxDepth} levels`)
    expect(ack.results[2]).toBeNull()
    const stored = await readMap(r.url, 'deep')
    expect([...stored.keys()].sort()).toEqual(['at-limit', 'plain'])
    expect(stored.get('at-limit')).toEqual({ body: nested(VALUE_LIMITS.maxDepth) })
  })
})

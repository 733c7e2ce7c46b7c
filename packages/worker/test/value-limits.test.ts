/**
 * Value rules through the engine (fake IndexedDB) and the real relay: a value nested
 * exactly to `VALUE_LIMITS.maxDepth` is written, queued in the outbox, sent, committed by
 * the relay and received by another device; one level more is refused at the write API
 * with INVALID_VALUE naming the limit. Strings, field names, keys and map names that are
 * not well-formed UTF-16 are refused at the write API (they would reach other replicas as
 * U+FFFD and diverge for good), and nothing of the refused write is stored.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import { VALUE_LIMITS, type Value } from '@outpost/core'
import type { Engine } from '../src/engine'
import type { Result } from '../src/engine-api'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

let relay: Relay
let removeDir: () => void
const engines = new Set<Engine>()

beforeEach(async () => {
  const dir = tempDir()
  removeDir = dir.remove
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
})

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  await relay.close()
  removeDir()
})

function start(): Engine {
  const engine = engineOn(freshIdb(), { url: relay.url })
  engines.add(engine)
  return engine
}

function nested(levels: number): Value {
  let value: Value = 'leaf'
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

function errorOf(result: Result<unknown>): { code: string; message: string } {
  if (result.ok) throw new Error('expected the write to be refused')
  return result.error
}

describe('depth limit through the engine, the outbox, the wire and the relay', () => {
  it('writes, syncs and reads back an LWW field and an OR value nested exactly to the limit', async () => {
    const writer = start()
    unwrap(await writer.ready())
    const deep = nested(VALUE_LIMITS.maxDepth)
    unwrap(await writer.set('notes', 'n1', { body: deep }))
    unwrap(await writer.update('notes', 'n2', { body: deep }))
    unwrap(await writer.orAdd('bags', 'b1', deep))
    expect(unwrap(await writer.get('notes', 'n1'))).toEqual({ body: deep })
    await waitFor('acked by the relay', async () => (await writer.status()).pendingWrites === 0)
    expect((await writer.status()).lastError).toBeNull()

    const reader = start()
    unwrap(await reader.subscribeShape({ map: 'notes' }))
    await waitFor('received', async () => unwrap(await reader.get('notes', 'n2')) !== undefined)
    expect(unwrap(await reader.get('notes', 'n1'))).toEqual({ body: deep })
    expect(unwrap(await reader.get('notes', 'n2'))).toEqual({ body: deep })
  })

  it('refuses one level more at the write API with INVALID_VALUE naming the limit, storing nothing', async () => {
    const writer = start()
    unwrap(await writer.ready())
    const tooDeep = nested(VALUE_LIMITS.maxDepth + 1)
    for (const result of [await writer.set('notes', 'n1', { body: tooDeep }), await writer.update('notes', 'n1', { body: tooDeep }), await writer.orAdd('bags', 'b1', tooDeep)]) {
      const error = errorOf(result)
      expect(error.code).toBe('INVALID_VALUE')
      expect(error.message).toContain(String(VALUE_LIMITS.maxDepth))
    }
    expect(unwrap(await writer.get('notes', 'n1'))).toBeUndefined()
    expect((await writer.status()).pendingWrites).toBe(0)
  })
})

describe('well-formed strings through the engine', () => {
  it('refuses lone surrogates in values, field names, keys and map names; well-formed text round-trips to another device', async () => {
    const writer = start()
    unwrap(await writer.ready())
    const refused: [Promise<Result<unknown>>, string][] = [
      [writer.set('notes', 'n1', { title: 'a\ud800b' }), 'INVALID_VALUE'],
      [writer.update('notes', 'n1', { tags: ['ok', '\udc00'] }), 'INVALID_VALUE'],
      [writer.set('notes', 'n1', { ['f\ud800']: 1 }), 'INVALID_VALUE'],
      [writer.orAdd('bags', 'b1', { s: '\ud83d' }), 'INVALID_VALUE'],
      [writer.set('notes', 'k\ud800', { title: 'x' }), 'INVALID_KEY'],
      [writer.set('no\udfffes', 'n1', { title: 'x' }), 'INVALID_KEY'],
      [writer.counterAdd('c\ud800', 1), 'INVALID_KEY'],
    ]
    for (const [result, code] of refused) expect(errorOf(await result).code).toBe(code)
    expect(unwrap(await writer.get('notes', 'n1'))).toBeUndefined()
    expect((await writer.status()).pendingWrites).toBe(0)

    const text = { title: 'caf\u00e9 \ud83d\ude00 \ufffd', ['\ud83d\udc4d']: 'thumbs' }
    unwrap(await writer.set('notes', '\ud83d\ude00', text))
    await waitFor('acked', async () => (await writer.status()).pendingWrites === 0)
    const reader = start()
    unwrap(await reader.subscribeShape({ map: 'notes' }))
    await waitFor('received', async () => unwrap(await reader.get('notes', '\ud83d\ude00')) !== undefined)
    expect(unwrap(await reader.get('notes', '\ud83d\ude00'))).toEqual(text)
  })
})

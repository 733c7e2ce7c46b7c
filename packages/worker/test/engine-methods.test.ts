/**
 * The engine's method table is the one list of its RPC surface: its rows are consistent
 * (every `end` is a plain call of the table, every callback-carrying row says where the
 * callback sits), the per-tab API serves exactly its methods, and the engine implements
 * every one of them.
 */
import { describe, expect, it } from 'vitest'
import { ENDING_METHODS, ENGINE_METHOD_NAMES, ENGINE_METHODS, answerHandle, methodSpec, parseArgs } from '../src/engine-methods'
import { createTabApi } from '../src/expose'
import { engineOn, freshIdb } from './helpers'

describe('ENGINE_METHODS', () => {
  it('rows are consistent: ends name plain calls, callbacks and streams say where and when', () => {
    for (const method of ENGINE_METHOD_NAMES) {
      const spec = methodSpec(method)
      if (spec.kind === 'call') expect(spec.callback, method).toBeUndefined()
      else expect(spec.callback, method).toBeTypeOf('number')
      if (spec.kind === 'subscription') expect(spec.end, method).toBeTypeOf('string')
      if (spec.kind === 'stream') expect(spec.last, method).toBeTypeOf('function')
      if (spec.end !== undefined) {
        expect(Object.keys(ENGINE_METHODS), `${method} ends with ${spec.end}`).toContain(spec.end)
        expect(methodSpec(spec.end as keyof typeof ENGINE_METHODS).kind, spec.end).toBe('call')
      }
    }
    expect([...ENDING_METHODS].sort()).toEqual(['releaseLock', 'unsubscribeInspector', 'unsubscribeQuery', 'unsubscribeSearch', 'unsubscribeStatus', 'unsubscribeTopic'])
  })

  it('the handle of an answer: a subscription id, a lease id, nothing for a failure', () => {
    expect(answerHandle('subscribeQuery', { ok: true, value: 7 })).toBe(7)
    expect(answerHandle('subscribeStatus', 3)).toBe(3)
    expect(answerHandle('acquireLock', { ok: true, value: { id: 4, name: 'l', token: 9, expiresAt: 0 } })).toBe(4)
    expect(answerHandle('subscribeTopic', { ok: false, error: { code: 'OFFLINE', message: 'x' } })).toBeUndefined()
  })

  it('checks arguments at the boundary and copies what the engine keeps', () => {
    expect(() => parseArgs('set', ['', 'k', {}])).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }))
    const spec = { map: 'todos', where: { eq: ['done', false] }, limit: 5 } as const
    const [parsed] = parseArgs('subscribeQuery', [spec, () => undefined])
    expect(parsed).toEqual(spec)
    expect(parsed).not.toBe(spec)
  })

  it('the per-tab API serves exactly the table (plus init), and the engine implements every row', async () => {
    const engine = engineOn(freshIdb())
    try {
      const api = createTabApi(async () => engine)
      expect(Object.keys(api).sort()).toEqual([...ENGINE_METHOD_NAMES, 'init'].sort())
      for (const method of ENGINE_METHOD_NAMES) expect(typeof engine[method], method).toBe('function')
    } finally {
      await engine.close()
    }
  })
})

import { describe, expect, it } from 'vitest'
import { InvalidMessageError, ProtocolVersionError } from '../src/errors'
import * as guards from '../src/protocol/guards'
import { PROTOCOL_VERSIONS } from '../src/protocol/messages'
import { sampleClientMessages, sampleServerMessages } from '../src/testing/sample-messages'

const { negotiateVersion, parseClientMessage, parseServerMessage, isClientMessage, isServerMessage } = guards

/** Each message type and its guard. */
const guardFor: Record<string, (message: unknown) => boolean> = {
  hello: guards.isHello,
  subscribe: guards.isSubscribe,
  unsubscribe: guards.isUnsubscribe,
  reconcile: guards.isReconcile,
  entries: guards.isEntries,
  ops: guards.isOps,
  credit: guards.isCredit,
  ping: guards.isPing,
  welcome: guards.isWelcome,
  error: guards.isErrorMessage,
  subscribed: guards.isSubscribed,
  nodes: guards.isNodes,
  push: guards.isPush,
  changes: guards.isChanges,
  synced: guards.isSynced,
  resync: guards.isResync,
  ack: guards.isAck,
  pong: guards.isPong,
  'topic-sub': guards.isTopicSubscribe,
  'topic-unsub': guards.isTopicUnsubscribe,
  'topic-pub': guards.isTopicPublish,
  'lock-acquire': guards.isLockAcquire,
  'lock-extend': guards.isLockExtend,
  'lock-release': guards.isLockRelease,
  'lock-check': guards.isLockCheck,
  invoke: guards.isInvoke,
  'topic-msg': guards.isTopicMessage,
  'topic-ack': guards.isTopicAck,
  'lock-granted': guards.isLockGranted,
  'lock-released': guards.isLockReleased,
  'lock-status': guards.isLockStatus,
  'lock-lost': guards.isLockLost,
  'invoke-result': guards.isInvokeResult,
}

/** Fields that carry an app's payload: any value is of the right type, only a missing one is not. */
const ANY_VALUE_FIELDS = new Set(['data', 'args', 'result'])

const samples: Record<string, Record<string, unknown>> = { ...sampleClientMessages, ...sampleServerMessages }

describe('message guards', () => {
  it('has a guard for every message type', () => {
    expect(Object.keys(guardFor).sort()).toEqual(Object.keys(samples).sort())
  })

  for (const [type, guard] of Object.entries(guardFor)) {
    it(`is${type[0]?.toUpperCase()}${type.slice(1)} accepts a valid ${type} and rejects everything else`, () => {
      const valid = samples[type] as Record<string, unknown>
      expect(guard(valid)).toBe(true)
      for (const [other, message] of Object.entries(samples)) if (other !== type) expect(guard(message), other).toBe(false)
      for (const field of Object.keys(valid)) {
        // `type` is checked above; payload fields (`data`, `args`, `result`) accept any value.
        if (field === 'type' || ANY_VALUE_FIELDS.has(field)) continue
        const wrongType = { ...valid, [field]: { unexpected: true } }
        expect(guard(wrongType), `${field} of the wrong type`).toBe(false)
      }
      for (const bad of [null, undefined, 1, 'hello', [], {}, { type }]) expect(guard(bad)).toBe(false)
    })
  }

  it('rejects messages with a required field missing', () => {
    const { replicaId: _omitted, ...noReplica } = sampleClientMessages.hello
    expect(guards.isHello(noReplica)).toBe(false)
    const { changes: _changes, ...noChanges } = sampleClientMessages.ops
    expect(guards.isOps(noChanges)).toBe(false)
    expect(guards.isOps({ ...sampleClientMessages.ops, changes: [] })).toBe(false)
    expect(guards.isAck({ ...sampleServerMessages.ack, results: [{ code: 'NOT_A_CODE', message: 'x' }] })).toBe(false)
  })

  it('tells client messages from server messages', () => {
    for (const message of Object.values(sampleClientMessages)) {
      expect(isClientMessage(message)).toBe(true)
      expect(isServerMessage(message)).toBe(false)
    }
    for (const message of Object.values(sampleServerMessages)) {
      expect(isServerMessage(message)).toBe(true)
      expect(isClientMessage(message)).toBe(false)
    }
  })

  it('parse functions return the message or throw InvalidMessageError with issues', () => {
    expect(parseClientMessage(sampleClientMessages.ping)).toEqual(sampleClientMessages.ping)
    expect(parseServerMessage(sampleServerMessages.pong)).toEqual(sampleServerMessages.pong)
    let thrown: unknown
    try {
      parseClientMessage({ type: 'ping', clientTime: 'soon' })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(InvalidMessageError)
    expect((thrown as InvalidMessageError).details?.['issues']).toEqual([expect.stringMatching(/^clientTime: /)])
    expect(() => parseServerMessage(sampleClientMessages.ping)).toThrow(InvalidMessageError)
  })
})

describe('negotiateVersion', () => {
  it('picks the highest version both sides speak', () => {
    expect(negotiateVersion([1], [1])).toBe(1)
    expect(negotiateVersion([1, 2, 3], [2, 3, 4])).toBe(3)
    expect(negotiateVersion([5, 2, 9, 4], [4, 2, 9])).toBe(9)
    expect(negotiateVersion([...PROTOCOL_VERSIONS])).toBe(PROTOCOL_VERSIONS[PROTOCOL_VERSIONS.length - 1])
  })

  it('throws ProtocolVersionError naming both sides and what to upgrade', () => {
    const failure = (client: number[], server: number[]): ProtocolVersionError => {
      try {
        negotiateVersion(client, server)
      } catch (error) {
        expect(error).toBeInstanceOf(ProtocolVersionError)
        return error as ProtocolVersionError
      }
      throw new Error('negotiateVersion accepted versions with nothing in common')
    }
    const oldClient = failure([1], [2, 3])
    expect(oldClient.message).toContain('[1]')
    expect(oldClient.message).toContain('[2, 3]')
    expect(oldClient.message).toMatch(/upgrade the client/)
    expect(oldClient.details).toEqual({ client: [1], supported: [2, 3] })
    expect(failure([4, 5], [2, 3]).message).toMatch(/upgrade the relay/)
    expect(failure([], [1]).message).toMatch(/upgrade the client or the relay/)
  })
})

/**
 * One valid example of every protocol message, for tests of guards, codecs and anything
 * that routes messages by type. Stamps and ids are fixed strings, not produced by a clock.
 */
import type { Change, ReplicaId, Stamp } from '../types'
import type { ClientMessage, MerkleNodeInfo, ServerMessage } from '../protocol/messages'

const stamp = (n: number): Stamp => `0000017f${String(n).padStart(8, '0')}-0000-replica-a` as Stamp
const replicaId = 'replica-a' as ReplicaId
const node: MerkleNodeInfo = { path: '', hash: '0123456789abcdef', count: 3 }

/** A typical change to record `key` of map `map` (three fields, one of them nested). */
export function sampleChange(map: string, key: string, n = 1): Change {
  return {
    kind: 'lww',
    map,
    key,
    state: {
      fields: [
        ['title', `Task ${n}`, stamp(n)],
        ['done', n % 2 === 0, stamp(n)],
        ['tags', { labels: ['a', 'b'], due: new Date(1_700_000_000_000 + n), weight: BigInt(n) }, stamp(n + 1)],
      ],
      deleted: null,
    },
  }
}

/** One valid example of each client → relay message, keyed by type. */
export const sampleClientMessages: { readonly [T in ClientMessage['type']]: Extract<ClientMessage, { type: T }> } = {
  hello: { type: 'hello', versions: [1], token: 'header.payload.signature', replicaId, clientTime: 1_700_000_000_000 },
  subscribe: { type: 'subscribe', sub: 1, shape: { map: 'todos', where: { eq: ['done', false] }, orderBy: [['title', 'asc']], limit: 50 }, root: node },
  unsubscribe: { type: 'unsubscribe', sub: 1 },
  reconcile: { type: 'reconcile', sub: 1, nodes: [node, { path: '0', hash: 'fedcba9876543210', count: 1 }] },
  entries: { type: 'entries', sub: 1, path: '0a', entries: [['t1', '0000000000000001']] },
  ops: { type: 'ops', id: 7, changes: [sampleChange('todos', 't1'), { kind: 'counter', map: 'likes', key: '', state: [[replicaId, 3, 1]] }, { kind: 'or', map: 'tags', key: 't1', state: { adds: [[stamp(1), 'red']], removes: [] } }] },
  credit: { type: 'credit', bytes: 524_288 },
  ping: { type: 'ping', clientTime: 1_700_000_000_000 },
  'topic-sub': { type: 'topic-sub', topic: 'room:42' },
  'topic-unsub': { type: 'topic-unsub', topic: 'room:42' },
  'topic-pub': { type: 'topic-pub', id: 8, topic: 'room:42', data: { text: 'hi', at: new Date(1_700_000_000_000) } },
  'lock-acquire': { type: 'lock-acquire', id: 9, name: 'invoice:9', ttl: 10_000, wait: 5_000 },
  'lock-extend': { type: 'lock-extend', id: 10, name: 'invoice:9', token: 3, ttl: 10_000 },
  'lock-release': { type: 'lock-release', id: 11, name: 'invoice:9', token: 3 },
  'lock-check': { type: 'lock-check', id: 12, name: 'invoice:9', token: 3 },
  invoke: { type: 'invoke', id: 13, map: 'stock', key: 'sku1', processor: 'decrement', args: { by: 1 } },
}

/** One valid example of each relay → client message, keyed by type. */
export const sampleServerMessages: { readonly [T in ServerMessage['type']]: Extract<ServerMessage, { type: T }> } = {
  welcome: { type: 'welcome', version: 1, serverTime: 1_700_000_000_001, replicaId, horizonMs: 30 * 86_400_000, resync: false },
  error: { type: 'error', error: { code: 'FORBIDDEN', message: 'You may not read todos', details: { map: 'todos' } }, ref: 7 },
  subscribed: { type: 'subscribed', sub: 1, root: node },
  nodes: { type: 'nodes', sub: 1, nodes: [node] },
  push: { type: 'push', sub: 1, keys: ['t1', '__proto__', ''] },
  changes: { type: 'changes', sub: 1, changes: [sampleChange('todos', 't2', 2)], moveOut: ['t9'] },
  synced: { type: 'synced', sub: 1, root: node, serverTime: 1_700_000_000_002 },
  resync: { type: 'resync', sub: 1, reason: 'past the tombstone horizon' },
  ack: { type: 'ack', id: 7, results: [null, { code: 'FORBIDDEN', message: 'no' }], serverTime: 1_700_000_000_003 },
  pong: { type: 'pong', clientTime: 1_700_000_000_000, serverTime: 1_700_000_000_004 },
  'topic-msg': { type: 'topic-msg', topic: 'room:42', from: replicaId, seq: 4, data: { text: 'hi' } },
  'topic-ack': { type: 'topic-ack', id: 8, delivered: 2 },
  'lock-granted': { type: 'lock-granted', id: 9, name: 'invoice:9', token: 3, expiresAt: 1_700_000_010_000 },
  'lock-released': { type: 'lock-released', id: 11, name: 'invoice:9' },
  'lock-status': { type: 'lock-status', id: 12, name: 'invoice:9', valid: true, current: 3 },
  'lock-lost': { type: 'lock-lost', name: 'invoice:9', token: 3, reason: 'expired' },
  'invoke-result': { type: 'invoke-result', id: 13, result: { remaining: 49 } },
}

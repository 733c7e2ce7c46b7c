/**
 * Authorization rules over a real relay with verified tokens: read denied, writes denied
 * per op (never stored, never fanned out), and a claims-based row filter that hides other
 * users' records, tombstones and digests, and refuses writes that leave it.
 */
import { MerkleTree, lwwDigest, type ChangesMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { remove, update } from './helpers/changes'
import { LocalShape } from './helpers/replica'
import { AUTH, token } from './helpers/tokens'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const RULES = {
  maps: {
    secrets: { read: 'none', write: 'none' },
    notes: { read: 'authenticated', write: 'authenticated', filter: { eq: ['owner', '$sub'] } },
    news: { read: 'public', write: { eq: ['role', 'editor'] } },
  },
} as const

async function setup() {
  const started = await startRelay({ auth: AUTH, rules: RULES as never })
  cleanups.push(started.stop)
  const connect = async (sub: string, claims: Record<string, unknown> = {}) => {
    const { client } = await TestClient.connect(started.relay.url, { token: await token(sub, { claims }) })
    cleanups.push(() => client.close())
    return client
  }
  return { relay: started.relay, connect }
}

async function barrier(client: TestClient): Promise<void> {
  const t = Math.random()
  client.send({ type: 'ping', clientTime: t })
  await client.waitAny((m) => m.type === 'pong' && m.clientTime === t)
}

describe('rules', () => {
  it('denies reads of a closed map and of maps no rule mentions', async () => {
    const { connect } = await setup()
    const alice = await connect('alice')
    alice.send({ type: 'subscribe', sub: 1, shape: { map: 'secrets' } })
    alice.send({ type: 'subscribe', sub: 2, shape: { map: 'unlisted' } })
    const e1 = await alice.waitAny((m) => m.type === 'error' && m.sub === 1)
    const e2 = await alice.waitAny((m) => m.type === 'error' && m.sub === 2)
    expect(e1.type === 'error' && e1.error.code).toBe('FORBIDDEN')
    expect(e2.type === 'error' && e2.error.code).toBe('FORBIDDEN')
  })

  it('rejects forbidden writes per op, stores none of them and fans none out', async () => {
    const { connect } = await setup()
    const alice = await connect('alice')
    const editor = await connect('eve', { role: 'editor' })
    const watcher = await connect('walt')
    const news = new LocalShape({ map: 'news' })
    await news.sync(watcher)
    watcher.skipAll()

    const ack = await alice.ops([
      update(alice.clock, 'notes', 'n1', { owner: 'alice', text: 'mine' }),
      update(alice.clock, 'notes', 'n2', { owner: 'bob', text: 'planted in bob\u2019s notes' }),
      update(alice.clock, 'news', 'fake', { title: 'not an editor' }),
      update(alice.clock, 'secrets', 's', { x: 1 }),
    ])
    expect(ack.results.map((r) => r?.code ?? null)).toEqual([null, 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN'])
    await editor.ops([update(editor.clock, 'news', 'real', { title: 'by an editor' })])
    const fanned = await watcher.next<ChangesMessage>((m) => m.type === 'changes')
    expect(fanned.changes.map((c) => c.key)).toEqual(['real'])

    const bob = await connect('bob')
    const bobs = new LocalShape({ map: 'notes' })
    await bobs.sync(bob)
    expect(bobs.states.size).toBe(0)
    const fresh = new LocalShape({ map: 'news' })
    await fresh.sync(watcher)
    expect([...fresh.states.keys()]).toEqual(['real'])
  })

  it('filters rows by claims: others\u2019 records, tombstones and digests stay hidden', async () => {
    const { connect } = await setup()
    const alice = await connect('alice')
    const bob = await connect('bob')
    const bobs = new LocalShape({ map: 'notes' })
    await bobs.sync(bob)
    bob.skipAll()

    await alice.ops([update(alice.clock, 'notes', 'a1', { owner: 'alice', text: 'alice only' })])
    const b1 = update(bob.clock, 'notes', 'b1', { owner: 'bob', text: 'bob only' })
    await bob.ops([b1])
    bobs.apply('b1', b1.state)
    await alice.ops([remove(alice.clock, 'notes', 'a1')])
    // Moving her own record to bob is a write outside her filter.
    const ack = await alice.ops([update(alice.clock, 'notes', 'a2', { owner: 'alice' }), update(alice.clock, 'notes', 'a2', { owner: 'bob' })])
    expect(ack.results.map((r) => r?.code ?? null)).toEqual([null, 'FORBIDDEN'])
    await barrier(bob)
    // Bob heard nothing about a1 or a2: no record, no tombstone, no move-out.
    for (const m of bob.all<ChangesMessage>((m) => m.type === 'changes' && m.sub === bobs.sub)) {
      expect(m.changes.map((c) => c.key)).not.toContain('a1')
      expect(m.moveOut ?? []).toEqual([])
    }
    // Bob's root is computed over his one record only.
    const expected = MerkleTree.from([['b1', lwwDigest(b1.state)]]).root()
    bob.send({ type: 'subscribe', sub: 77, shape: { map: 'notes' }, root: expected })
    const subscribed = await bob.waitAny((m) => m.type === 'subscribed' && m.sub === 77)
    expect(subscribed.type === 'subscribed' && subscribed.root).toEqual(expected)
    // Probing alice's key through reconciliation reveals nothing either: bob is asked to push it, not told it moved out.
    bob.send({ type: 'entries', sub: 77, path: '', entries: [['a1', '0123456789abcdef'], ['b1', lwwDigest(b1.state)]] })
    await bob.waitAny((m) => m.type === 'synced' && m.sub === 77)
    const answers = bob.all<ChangesMessage>((m) => m.type === 'changes' && m.sub === 77)
    expect(answers.flatMap((m) => [...m.changes.map((c) => c.key), ...(m.moveOut ?? [])])).toEqual([])
  })
})

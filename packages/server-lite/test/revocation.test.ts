/**
 * Authorization that changes while a device is away, and key probing, over raw protocol
 * clients with verified tokens:
 * - a record a device held but may no longer see (its claims changed while it was
 *   offline) is moved out on reconnect, never pushed back, and nothing of it is sent;
 * - with a key rule (`keys: '$sub/*'`), a write outside the caller's keys is refused the
 *   same way whether the key exists or not, so writes cannot probe for other users' keys.
 */
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
    notes: { read: 'authenticated', write: 'authenticated', filter: { eq: ['team', '$team'] } },
    docs: { read: 'authenticated', write: 'authenticated', filter: { eq: ['owner', '$sub'] }, keys: '$sub/*' },
  },
} as const

async function setup() {
  const started = await startRelay({ auth: AUTH, rules: RULES as never })
  cleanups.push(started.stop)
  const connect = async (sub: string, claims: Record<string, unknown> = {}, replicaId?: string) => {
    const { client } = await TestClient.connect(started.relay.url, { token: await token(sub, { claims }), ...(replicaId === undefined ? {} : { replicaId }) })
    cleanups.push(() => client.close())
    return client
  }
  return { connect }
}

describe('revocation while offline', () => {
  it('moves out records the device may no longer see, and sends nothing of them', async () => {
    const { connect } = await setup()
    const writer = await connect('walt', { team: 'red' })
    const written = await writer.ops([update(writer.clock, 'notes', 'n1', { team: 'red', text: 'red one' }), update(writer.clock, 'notes', 'n2', { team: 'red', text: 'red two' })])
    expect(written.results).toEqual([null, null])
    expect((await writer.ops([remove(writer.clock, 'notes', 'n2')])).results).toEqual([null])
    const blueWriter = await connect('bea', { team: 'blue' })
    expect((await blueWriter.ops([update(blueWriter.clock, 'notes', 'b1', { team: 'blue', text: 'blue one' })])).results).toEqual([null])

    const red = await connect('alice', { team: 'red' })
    const device = new LocalShape({ map: 'notes' })
    await device.sync(red)
    expect([...device.states.keys()].sort()).toEqual(['n1', 'n2'])
    await red.close()

    // While the device was away, alice moved to team blue (a new token on reconnect).
    const blue = await connect('alice', { team: 'blue' }, red.replicaId)
    const before = blue.messages.length
    const report = await device.sync(blue)
    expect(report.pushed).toEqual([])
    expect([...device.states.keys()]).toEqual(['b1'])
    expect(device.view('b1')).toEqual({ team: 'blue', text: 'blue one' })
    // On the wire: no record, and no move-out, beyond what the caller held or may see.
    const sent = blue.messages.slice(before)
    const records = sent.flatMap((m) => (m.type === 'changes' ? m.changes.map((c) => c.key) : []))
    expect(records).toEqual(['b1'])
    const moveOuts = sent.flatMap((m) => (m.type === 'changes' ? (m.moveOut ?? []) : []))
    expect(moveOuts.sort()).toEqual(['n1', 'n2'])
  })
})

describe('key rules', () => {
  it('refuse a write outside the caller keys alike whether the key exists or not', async () => {
    const { connect } = await setup()
    const bob = await connect('bob')
    expect((await bob.ops([update(bob.clock, 'docs', 'bob/1', { owner: 'bob', text: 'mine' })])).results).toEqual([null])
    const alice = await connect('alice')
    const ack = await alice.ops([update(alice.clock, 'docs', 'bob/1', { owner: 'alice' }), update(alice.clock, 'docs', 'bob/2', { owner: 'alice' }), update(alice.clock, 'docs', 'alice/1', { owner: 'alice' })])
    const [existing, missing, own] = ack.results
    expect(existing?.code).toBe('FORBIDDEN')
    expect(missing?.code).toBe('FORBIDDEN')
    expect(existing?.message.replace('bob/1', 'K')).toBe(missing?.message.replace('bob/2', 'K'))
    expect(own).toBeNull()
  })

  it('move out, never push, a key outside the caller keys during reconciliation', async () => {
    const { connect } = await setup()
    const alice = await connect('alice')
    // A device holding a key under someone else's prefix that the relay never saw.
    const device = new LocalShape({ map: 'docs' })
    device.apply('bob/9', update(alice.clock, 'docs', 'bob/9', { owner: 'alice' }).state)
    device.apply('alice/2', update(alice.clock, 'docs', 'alice/2', { owner: 'alice' }).state)
    const report = await device.sync(alice)
    expect(report.pushed).toEqual(['alice/2'])
    expect(device.states.has('bob/9')).toBe(false)
  })
})

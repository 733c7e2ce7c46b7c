/**
 * Writes the relay refuses for good never wedge a device and never leave state only this
 * device believes: the refused op leaves the outbox at once (the ops behind it persist),
 * `watchWrite` reports the typed error, status lists it (count, last error, keys), and the
 * local record returns to the relay's version, also after a restart. A pending write too
 * large for the relay's (smaller) limits is refused the same way before it is sent.
 * Engines on fake IndexedDB against the real relay with JWT auth and a row filter.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { SignJWT } from 'jose'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import type { WriteConcern, WriteRejection } from '../src/engine-api'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const SECRET = 'rejections-test-secret-of-at-least-32-chars'
const relays: { relay: Relay; remove: () => void }[] = []
const engines = new Set<Engine>()

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  for (const { relay, remove } of relays.splice(0)) {
    await relay.close()
    remove()
  }
})

async function tokenFor(sub: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET))
}

async function relayWith(limits: { maxFrameBytes?: number } = {}): Promise<Relay> {
  const dir = tempDir()
  const relay = await createRelay({
    port: 0,
    host: '127.0.0.1',
    dataDir: dir.path,
    logLevel: 'silent',
    auth: { secret: SECRET },
    rules: { maps: { notes: { read: 'authenticated', write: 'authenticated', filter: { eq: ['owner', '$sub'] } } } },
    limits,
  })
  relays.push({ relay, remove: dir.remove })
  return relay
}

async function start(relay: Relay, sub: string, options: Parameters<typeof engineOn>[1] & { idb?: ReturnType<typeof freshIdb> } = {}): Promise<Engine> {
  const { idb = freshIdb(), ...rest } = options
  const engine = engineOn(idb, { url: relay.url, token: await tokenFor(sub), ...rest })
  engines.add(engine)
  return engine
}

function watch(engine: Engine, opId: number): { events: (WriteConcern | WriteRejection)[]; ready: Promise<void> } {
  const events: (WriteConcern | WriteRejection)[] = []
  return { events, ready: engine.watchWrite(opId, (event) => void events.push(event)) }
}

describe('writes the relay refuses for good', () => {
  it('leave the outbox, report the typed error, show in status, and the record returns to the relay version', async () => {
    const relay = await relayWith()
    const idb = freshIdb()
    let alice = await start(relay, 'alice', { idb })
    unwrap(await alice.subscribeShape({ map: 'notes' }))
    await waitFor('live', async () => (await alice.status()).connection === 'live')
    unwrap(await alice.set('notes', 'n1', { owner: 'alice', text: 'v1' }))
    await waitFor('n1 persisted', async () => (await alice.status()).pendingWrites === 0)

    // Moving n1 outside alice's row filter is forbidden; the write queued behind it is not.
    const refused = unwrap(await alice.update('notes', 'n1', { owner: 'bob', text: 'stolen' }))
    const behind = unwrap(await alice.set('notes', 'n2', { owner: 'alice', text: 'behind' }))
    const w1 = watch(alice, refused.opId)
    const w2 = watch(alice, behind.opId)
    await Promise.all([w1.ready, w2.ready])
    await waitFor('the refusal', () => w1.events.some((e) => typeof e === 'object'))
    await waitFor('the write behind it persisted', () => w2.events.includes('persisted'))
    const rejection = w1.events.find((e): e is WriteRejection => typeof e === 'object')
    expect(rejection?.rejected.code).toBe('FORBIDDEN')
    expect(w1.events).not.toContain('persisted')

    const status = await alice.status()
    expect(status.pendingWrites).toBe(0)
    expect(status.rejected.count).toBe(1)
    expect(status.rejected.lastError?.code).toBe('FORBIDDEN')
    expect(status.rejected.keys).toEqual([{ map: 'notes', key: 'n1' }])
    await waitFor('n1 back to the relay version', async () => JSON.stringify(unwrap(await alice.get('notes', 'n1'))) === JSON.stringify({ owner: 'alice', text: 'v1' }))

    // A watch that comes late still learns of the refusal.
    const late = watch(alice, refused.opId)
    await late.ready
    expect(late.events.map((e) => (typeof e === 'object' ? e.rejected.code : e))).toEqual(['FORBIDDEN'])

    // After a restart, offline: the refusal is remembered and the record stays reverted.
    await alice.close()
    engines.delete(alice)
    alice = await start(relay, 'alice', { idb, startOffline: true })
    const again = unwrap(await alice.ready())
    expect(again.rejected.count).toBe(1)
    expect(again.pendingWrites).toBe(0)
    expect(unwrap(await alice.get('notes', 'n1'))).toEqual({ owner: 'alice', text: 'v1' })
  })

  it('refuses before sending a pending write that no longer fits the relay limits, and sends the rest', async () => {
    const relay = await relayWith({ maxFrameBytes: 256 * 1024 })
    const engine = await start(relay, 'alice', { startOffline: true })
    const big = unwrap(await engine.set('notes', 'big', { owner: 'alice', body: 'x'.repeat(600_000) }))
    const small = unwrap(await engine.set('notes', 'small', { owner: 'alice', body: 'ok' }))
    const w = watch(engine, big.opId)
    const s = watch(engine, small.opId)
    await Promise.all([w.ready, s.ready])
    await engine.setOffline(false)
    await waitFor('small persisted', () => s.events.includes('persisted'))
    await waitFor('big refused', () => w.events.some((e) => typeof e === 'object'))
    expect((w.events.find((e) => typeof e === 'object') as WriteRejection).rejected.code).toBe('VALUE_TOO_LARGE')
    expect(unwrap(await engine.get('notes', 'big'))).toBeUndefined()
    const status = await engine.status()
    expect(status.pendingWrites).toBe(0)
    expect(status.rejected.keys).toEqual([{ map: 'notes', key: 'big' }])
    expect(status.connection).toBe('live')
  })
})

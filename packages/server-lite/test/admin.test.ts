/**
 * The relay's read-only admin endpoints: off without an admin token (404); with one, a
 * missing, wrong or client token is 401; the right one sees sessions, subscriptions, maps
 * (record counts, change-log head, the Merkle root a client would compute), locks with
 * fencing tokens and holders, and the bus (none on LMDB; health and lag over Postgres).
 * Lists page with `limit` / `after`, and bad paging is a 400 that says what to send.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { MerkleTree, lwwDigest, type Change, type LwwRecordState } from '@outpost/core'
import { TestClient, startRelay } from './helpers/client'
import { remove, set } from './helpers/changes'
import { acquire, expectType } from './helpers/primitives'
import { ADMIN_BURST, ADMIN_RATE, FAILED_BURST, FAILED_EVERY_MS } from '../src/admin/admin-endpoints'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from './helpers/postgres'

const ADMIN = 'admin-token-for-tests-0123456789abcdef'
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(config: Parameters<typeof startRelay>[0] = {}, options: Parameters<typeof startRelay>[1] = {}): Promise<{ url: string; httpUrl: string }> {
  const started = await startRelay(config, options)
  cleanups.push(started.stop)
  return { url: started.relay.url, httpUrl: started.relay.httpUrl }
}

async function connect(url: string): Promise<TestClient> {
  const { client } = await TestClient.connect(url)
  cleanups.push(() => client.close())
  return client
}

/** A request with the admin token (or `token`; null sends no Authorization header). */
async function get(httpUrl: string, path: string, token: string | null = ADMIN, method = 'GET'): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${httpUrl}${path}`, { method, headers: token === null ? {} : { authorization: `Bearer ${token}` } })
  return { status: response.status, body: await response.json(), headers: response.headers }
}

/** The root a device holding exactly these records (whole map) would compute. */
function rootOf(changes: readonly Change[]): string {
  const tree = new MerkleTree()
  for (const c of changes) tree.set(c.key, lwwDigest(c.state as LwwRecordState))
  return tree.root().hash
}

describe('admin endpoints', () => {
  it('are off without an admin token', async () => {
    const { httpUrl } = await relay()
    for (const path of ['/admin', '/admin/sessions', '/admin/maps']) {
      const { status, body } = await get(httpUrl, path)
      expect(status, path).toBe(404)
      expect(body.error.message).toContain('OUTPOST_ADMIN_TOKEN')
    }
  })

  it('answer 401 without the token, with a wrong one, or with a client token', async () => {
    const { httpUrl } = await relay({ adminToken: ADMIN })
    for (const token of [null, 'wrong', `${ADMIN}x`, ADMIN.slice(0, -1), 'eyJhbGciOiJIUzI1NiJ9.e30.sig']) {
      for (const path of ['/admin', '/admin/sessions', '/admin/subscriptions', '/admin/maps', '/admin/locks', '/admin/bus']) {
        const { status, body, headers } = await get(httpUrl, path, token)
        expect(status, `${path} with ${String(token)}`).toBe(401)
        expect(body.error.code).toBe('UNAUTHENTICATED')
        expect(headers.get('www-authenticate')).toContain('Bearer')
      }
    }
    // Not a basic-auth or query-string token either.
    expect((await fetch(`${httpUrl}/admin?token=${ADMIN}`)).status).toBe(401)
    expect((await fetch(`${httpUrl}/admin`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` } })).status).toBe(401)
    expect((await get(httpUrl, '/admin')).status).toBe(200)
  })

  it('rejects a short admin token at start with a message that says how to make one', async () => {
    await expect(startRelay({ adminToken: 'short' })).rejects.toThrow(/adminToken must be at least 24 characters/)
  })

  it('report sessions, subscriptions, maps with counts and roots, locks and the bus', async () => {
    const { url, httpUrl } = await relay({ adminToken: ADMIN })
    const alice = await connect(url)
    const bob = await connect(url)
    alice.send({ type: 'subscribe', sub: 1, shape: { map: 'tasks' } })
    alice.send({ type: 'subscribe', sub: 2, shape: { map: 'notes', where: { eq: ['owner', 'alice'] } } })
    await alice.waitAny((m) => m.type === 'synced' && m.sub === 1)
    await alice.waitAny((m) => m.type === 'synced' && m.sub === 2)
    const tasks = [set(bob.clock, 'tasks', 't1', { title: 'one' }), set(bob.clock, 'tasks', 't2', { title: 'two' }), remove(bob.clock, 'tasks', 't3')]
    const notes = [set(bob.clock, 'notes', 'n1', { owner: 'alice', text: 'hi' })]
    await bob.ops([...tasks, ...notes])
    const grant = expectType(await acquire(alice, 'invoice:9', 10_000, 0), 'lock-granted')

    const overview = await get(httpUrl, '/admin')
    expect(overview.status).toBe(200)
    expect(overview.body.relay).toMatchObject({ state: 'ready', store: 'lmdb', bus: null, sessions: 2, replicaId: 'relay' })

    const sessions = (await get(httpUrl, '/admin/sessions')).body
    expect(sessions.next).toBeNull()
    expect(sessions.items).toHaveLength(2)
    const byReplica = new Map(sessions.items.map((s: any) => [s.replicaId, s]))
    expect(byReplica.get(alice.replicaId)).toMatchObject({ state: 'open', transport: 'ws', subject: 'anonymous', subscriptions: 2, paused: false })
    expect(byReplica.get(bob.replicaId)).toMatchObject({ state: 'open', subscriptions: 0 })
    const aliceSession = (byReplica.get(alice.replicaId) as { id: string }).id

    const subs = (await get(httpUrl, '/admin/subscriptions')).body
    expect(subs.items.map((s: any) => [s.session, s.sub, s.map, s.shape])).toEqual(
      expect.arrayContaining([
        [aliceSession, 1, 'tasks', { map: 'tasks' }],
        [aliceSession, 2, 'notes', { map: 'notes', where: { eq: ['owner', 'alice'] } }],
      ]),
    )
    expect(subs.items).toHaveLength(2)

    const maps = (await get(httpUrl, '/admin/maps')).body
    const tasksRow = maps.items.find((m: any) => m.map === 'tasks')
    expect(tasksRow).toEqual({ map: 'tasks', kind: 'lww', records: 3, head: 3, floor: 0, root: { hash: rootOf(tasks), count: 3 }, views: 1, subscribers: 1 })
    expect(maps.items.find((m: any) => m.map === 'notes')).toMatchObject({ records: 1, root: { hash: rootOf(notes), count: 1 }, subscribers: 1 })

    // Paging: one map per page, in name order, until `next` is null.
    const first = (await get(httpUrl, '/admin/maps?limit=1')).body
    expect(first.items.map((m: any) => m.map)).toEqual(['notes'])
    expect(first.next).toBe('notes')
    const second = (await get(httpUrl, `/admin/maps?limit=1&after=${first.next}`)).body
    expect(second.items.map((m: any) => m.map)).toEqual(['tasks'])
    expect(second.next).toBeNull()
    const sessionPage = (await get(httpUrl, '/admin/sessions?limit=1')).body
    expect(sessionPage.items).toHaveLength(1)
    expect((await get(httpUrl, `/admin/sessions?limit=1&after=${sessionPage.next}`)).body.items[0].id).not.toBe(sessionPage.items[0].id)

    const locks = (await get(httpUrl, '/admin/locks')).body
    expect(locks.items).toEqual([{ name: 'invoice:9', token: grant.token, expiresAt: grant.expiresAt, subject: 'anonymous', holder: aliceSession, waiters: 0 }])
    expect((await get(httpUrl, '/admin/locks?name=invoice:9')).body.items).toEqual([{ name: 'invoice:9', current: grant.token, holder: true, expiresAt: grant.expiresAt }])
    expect((await get(httpUrl, '/admin/locks?name=never')).body.items).toEqual([{ name: 'never', current: 0, holder: false, expiresAt: null }])

    expect((await get(httpUrl, '/admin/bus')).body).toEqual({ bus: null })

    // Bad paging says what to send; writing is not a thing here.
    const bad = await get(httpUrl, '/admin/sessions?limit=0')
    expect(bad.status).toBe(400)
    expect(bad.body.error).toEqual({ code: 'INVALID_MESSAGE', message: 'limit must be a whole number from 1 to 1000' })
    expect((await get(httpUrl, '/admin/maps?limit=101')).status).toBe(400)
    expect((await get(httpUrl, '/admin/sessions', ADMIN, 'POST')).status).toBe(404)
    expect((await get(httpUrl, '/admin/nope')).status).toBe(404)

    // Once a session leaves, it and its subscriptions are gone from the lists.
    await alice.close()
    await expect.poll(async () => (await get(httpUrl, '/admin/sessions')).body.items.length).toBe(1)
    expect((await get(httpUrl, '/admin/subscriptions')).body.items).toEqual([])
  })

  it('rate-limit wrong tokens per address, then every caller together, and say when to retry', async () => {
    let time = 1_000_000
    const { httpUrl } = await relay({ adminToken: ADMIN }, { now: () => time })
    for (let i = 0; i < FAILED_BURST; i++) expect((await get(httpUrl, '/admin', 'wrong')).status).toBe(401)
    // The address has used its failures: even the right token waits, so guessing gains nothing.
    for (const token of ['wrong', ADMIN]) {
      const limited = await get(httpUrl, '/admin', token)
      expect(limited.status).toBe(429)
      expect(limited.body.error.code).toBe('RATE_LIMITED')
      expect(limited.body.error.message).toContain('wrong admin token')
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    }
    time += FAILED_EVERY_MS
    expect((await get(httpUrl, '/admin', ADMIN)).status).toBe(200)

    // All requests together: a burst, then the sustained rate.
    for (let i = 1; i < ADMIN_BURST; i++) expect((await get(httpUrl, '/admin/sessions')).status, `request ${i}`).toBe(200)
    const over = await get(httpUrl, '/admin/sessions')
    expect(over.status).toBe(429)
    expect(over.body.error.code).toBe('RATE_LIMITED')
    expect(over.body.error.retryAfterMs).toBe(Math.ceil(1000 / ADMIN_RATE))
    time += Math.ceil(1000 / ADMIN_RATE)
    expect((await get(httpUrl, '/admin/sessions')).status).toBe(200)
    expect((await get(httpUrl, '/admin/sessions')).status).toBe(429)
  })
})

const pgMissing = await postgresMissing()

describe.skipIf(pgMissing !== undefined)('admin endpoints over Postgres', () => {
  it('report the bus between relays with its lag', async () => {
    const schema = freshSchema('admin')
    cleanups.push(() => dropSchemas([schema]))
    const one = await relay({ adminToken: ADMIN, store: POSTGRES_URL, storeSchema: schema, bus: 'postgres', pollMs: 0, replicaId: 'relay-1' })
    const two = await relay({ adminToken: ADMIN, store: POSTGRES_URL, storeSchema: schema, bus: 'postgres', pollMs: 0, replicaId: 'relay-2' })
    const writer = await connect(one.url)
    const reader = await connect(two.url)
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'tasks' } })
    await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
    await writer.ops([set(writer.clock, 'tasks', 't1', { title: 'one' })])
    await reader.waitAny((m) => m.type === 'changes')
    const { body } = await get(two.httpUrl, '/admin/bus')
    expect(body.bus).toMatchObject({ name: 'postgres', connected: true, state: 'connected' })
    expect(body.bus.delivered).toBeGreaterThan(0)
    expect(body.bus.lag.samples).toBeGreaterThan(0)
    expect(body.bus.lag.lastMs).toBeGreaterThanOrEqual(0)
    expect((await get(two.httpUrl, '/admin')).body.relay).toMatchObject({ store: 'postgres', bus: 'postgres', replicaId: 'relay-2' })
  })
})

/**
 * Authentication and protocol guards: every kind of bad token is rejected with
 * UNAUTHENTICATED (4001) or TOKEN_EXPIRED (4003); a token that expires on a live socket
 * closes it with a reason; a replica id is bound to its user; version mismatches,
 * clock drift, oversize frames, garbage frames, floods and connection caps all get a
 * typed error or close code while the relay keeps serving everyone else.
 */
import { PROTOCOL_VERSION, PROTOCOL_VERSIONS, encodeStamp, lwwUpdateState, type ErrorMessage, type ReplicaId } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'
import { AUTH, AUDIENCE, ISSUER, noneToken, tamperedToken, token } from './helpers/tokens'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(config = {}) {
  const started = await startRelay(config)
  cleanups.push(started.stop)
  return started.relay
}

/** Sends hello with `tok` and returns the error and the close. */
async function rejected(url: string, tok: string | undefined, replicaId?: string) {
  const client = await TestClient.open(url, replicaId === undefined ? {} : { replicaId })
  client.hello(tok === undefined ? {} : { token: tok })
  const error = await client.waitAny((m) => m.type === 'error')
  const closed = await client.closed
  return { error: (error as ErrorMessage).error, closed }
}

describe('authentication', () => {
  it('rejects alg none, wrong key, wrong aud, wrong iss, expired, future nbf, tampered and missing tokens', async () => {
    const r = await relay({ auth: AUTH })
    const now = Math.floor(Date.now() / 1000)
    const cases: [string, string | undefined, string, number][] = [
      ['alg none', noneToken('mallory'), 'UNAUTHENTICATED', 4001],
      ['wrong key', await token('mallory', { secret: 'another-secret-that-is-32-characters-or-more' }), 'UNAUTHENTICATED', 4001],
      ['wrong aud', await token('mallory', { audience: 'someone-else' }), 'UNAUTHENTICATED', 4001],
      ['wrong iss', await token('mallory', { issuer: 'https://evil.test' }), 'UNAUTHENTICATED', 4001],
      ['expired', await token('mallory', { expiresIn: -60 }), 'TOKEN_EXPIRED', 4003],
      ['future nbf', await token('mallory', { notBefore: now + 600 }), 'UNAUTHENTICATED', 4001],
      ['tampered', await tamperedToken('mallory'), 'UNAUTHENTICATED', 4001],
      ['missing', undefined, 'UNAUTHENTICATED', 4001],
    ]
    for (const [name, tok, code, closeCode] of cases) {
      const { error, closed } = await rejected(r.url, tok)
      expect({ name, code: error.code, close: closed.code }).toEqual({ name, code, close: closeCode })
    }
    // A good token still works after all that.
    const { client, welcome } = await TestClient.connect(r.url, { token: await token('alice') })
    cleanups.push(() => client.close())
    expect(welcome.version).toBe(PROTOCOL_VERSION)
    expect([ISSUER, AUDIENCE]).toHaveLength(2)
  })

  it('closes a live socket with 4003 and a reason when its token expires', async () => {
    const r = await relay({ auth: AUTH })
    const { client } = await TestClient.connect(r.url, { token: await token('alice', { expiresIn: 2 }) })
    const started = Date.now()
    const error = await client.waitAny((m) => m.type === 'error', 8_000)
    const closed = await client.closed
    expect((error as ErrorMessage).error.code).toBe('TOKEN_EXPIRED')
    expect(closed.code).toBe(4003)
    expect(closed.reason).toMatch(/expired/)
    expect(Date.now() - started).toBeLessThan(6_000)
  })

  it('binds a replica id to the first user that uses it', async () => {
    const r = await relay({ auth: AUTH })
    const { client } = await TestClient.connect(r.url, { token: await token('alice'), replicaId: 'laptop-1' })
    cleanups.push(() => client.close())
    const { error, closed } = await rejected(r.url, await token('bob'), 'laptop-1')
    expect(error.code).toBe('FORBIDDEN')
    expect(closed.code).toBe(4004)
  })

  it('logs in as anonymous when no auth is configured', async () => {
    const r = await relay()
    const { client, welcome } = await TestClient.connect(r.url)
    cleanups.push(() => client.close())
    expect(welcome.type).toBe('welcome')
  })
})

describe('protocol guards', () => {
  it('answers a version mismatch with PROTOCOL_VERSION and closes with 4000', async () => {
    const r = await relay()
    const client = await TestClient.open(r.url)
    client.hello({ versions: [99] })
    const error = (await client.waitAny((m) => m.type === 'error')) as ErrorMessage
    expect(error.error.code).toBe('PROTOCOL_VERSION')
    expect(error.error.details).toMatchObject({ supported: [...PROTOCOL_VERSIONS] })
    expect((await client.closed).code).toBe(4000)
  })

  it('requires hello first', async () => {
    const r = await relay()
    const client = await TestClient.open(r.url)
    client.send({ type: 'ping', clientTime: 1 })
    const error = (await client.waitAny((m) => m.type === 'error')) as ErrorMessage
    expect(error.error.code).toBe('INVALID_MESSAGE')
    expect((await client.closed).code).toBe(4002)
  })

  it('rejects stamps beyond maxDrift per op, with the relay\u2019s time', async () => {
    const r = await relay({ maxDriftMs: 60_000 })
    const { client } = await TestClient.connect(r.url)
    cleanups.push(() => client.close())
    const future = encodeStamp({ wall: Date.now() + 120_000, counter: 0, replica: client.replicaId as ReplicaId })
    const ack = await client.ops([
      { kind: 'lww', map: 'm', key: 'k', state: lwwUpdateState({ x: 1 }, future) },
      update(client.clock, 'm', 'ok', { x: 2 }),
    ])
    expect(ack.results[0]?.code).toBe('CLOCK_DRIFT')
    const receiverTime = ack.results[0]?.details?.['receiverTime'] as number
    expect(Math.abs(receiverTime - Date.now())).toBeLessThan(5_000)
    expect(ack.results[1]).toBeNull()
  })

  it('closes a frame over 1 MiB with 1009 and keeps serving others', async () => {
    const r = await relay()
    const { client: big } = await TestClient.connect(r.url)
    const { client: other } = await TestClient.connect(r.url)
    cleanups.push(() => other.close())
    big.sendRaw(new Uint8Array(1024 * 1024 + 10))
    expect((await big.closed).code).toBe(1009)
    expect((await other.ops([update(other.clock, 'm', 'k', { x: 1 })])).results).toEqual([null])
  })

  it('answers garbage frames with typed errors, then closes with 1008', async () => {
    const r = await relay({ limits: { maxBadFrames: 3 } })
    const { client } = await TestClient.connect(r.url)
    client.sendRaw(new Uint8Array([0xc1]))
    client.sendRaw({ type: 'ops', id: 1, changes: 'nope' })
    client.sendRaw(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]))
    expect((await client.closed).code).toBe(1008)
    const codes = client.all<ErrorMessage>((m) => m.type === 'error').map((m) => m.error.code)
    expect(codes).toEqual(['DECODE_FAILED', 'INVALID_MESSAGE', 'DECODE_LIMIT'])
  })

  it('rate-limits a connection that writes too fast, with retryAfterMs', async () => {
    // The relay's clock moves only when the test moves it: a slow machine refills no tokens
    // between the burst and the write after it.
    let now = Date.now()
    const started = await startRelay({ limits: { opsPerSecond: 10, opsBurst: 10 } }, { now: () => now })
    cleanups.push(started.stop)
    const { client } = await TestClient.connect(started.relay.url, { now: () => now })
    cleanups.push(() => client.close())
    expect((await client.ops(Array.from({ length: 10 }, (_, i) => update(client.clock, 'm', `k${i}`, { i })))).results).toHaveLength(10)
    client.send({ type: 'ops', id: 99, changes: [update(client.clock, 'm', 'x', { i: 1 })] })
    const error = (await client.waitAny((m) => (m.type === 'error' && m.ref === 99) || (m.type === 'ack' && m.id === 99))) as ErrorMessage
    expect(error.type).toBe('error')
    expect(error.error.code).toBe('RATE_LIMITED')
    const retryAfterMs = error.error.details?.['retryAfterMs'] as number
    expect(retryAfterMs).toBeGreaterThan(0)
    // Waiting as told is enough.
    now += retryAfterMs
    expect((await client.ops([update(client.clock, 'm', 'x', { i: 1 })])).results).toEqual([null])
  })

  it('shares one write budget among all connections of a subject, and not with other subjects', async () => {
    const r = await relay({ auth: AUTH, limits: { opsPerSecond: 1_000, opsBurst: 100, subjectOpsPerSecond: 1, subjectOpsBurst: 150 } })
    const open = async (sub: string) => {
      const { client } = await TestClient.connect(r.url, { token: await token(sub) })
      cleanups.push(() => client.close())
      return client
    }
    const batch = (client: TestClient, n: number) => Array.from({ length: n }, (_, i) => update(client.clock, 'm', `${client.replicaId}-${i}`, { i }))
    const [a1, a2, b] = [await open('alice'), await open('alice'), await open('bob')]
    // Each connection is within its own limit (100), but alice's two together exceed hers (150).
    expect((await a1.ops(batch(a1, 100))).results.every((x) => x === null)).toBe(true)
    a2.send({ type: 'ops', id: 7, changes: batch(a2, 100) })
    const refused = (await a2.waitAny((m) => (m.type === 'error' && m.ref === 7) || (m.type === 'ack' && m.id === 7))) as ErrorMessage
    expect(refused.type).toBe('error')
    expect(refused.error.code).toBe('RATE_LIMITED')
    expect(refused.error.details).toMatchObject({ limit: 'subject' })
    expect(refused.error.details?.['retryAfterMs']).toBeGreaterThan(0)
    // Bob's budget is his own.
    expect((await b.ops(batch(b, 100))).results.every((x) => x === null)).toBe(true)
  })

  it('caps connections per subject', async () => {
    const r = await relay({ limits: { maxConnectionsPerSubject: 1 } })
    const { client } = await TestClient.connect(r.url)
    cleanups.push(() => client.close())
    const { error, closed } = await rejected(r.url, undefined)
    expect(error.code).toBe('TOO_MANY_CONNECTIONS')
    expect(closed.code).toBe(4008)
  })
})

/**
 * Topics through a real relay and real sockets: a message published by one client reaches
 * every other subscribed client (not the publisher's own session), in publish order per
 * publisher, and nothing reaches a client after it unsubscribed. Rules deny publishing
 * (error with ref) and subscribing (error without ref, socket kept open). Prints fan-out
 * latency to 50 subscribers.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { TopicMessage } from '@outpost/core'
import { TestClient, startRelay } from './helpers/client'
import { call, expectType, percentile, sleep } from './helpers/primitives'
import { AUTH, token } from './helpers/tokens'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(config: Parameters<typeof startRelay>[0] = {}): Promise<string> {
  const started = await startRelay(config)
  cleanups.push(started.stop)
  return started.relay.url
}

async function connect(url: string, options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
  const { client } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return client
}

/** Subscribes and makes sure the relay handled it (frames of one socket are handled in order). */
async function subscribe(client: TestClient, topic: string): Promise<void> {
  client.send({ type: 'topic-sub', topic })
  await call(client, (id) => ({ type: 'lock-check', id, name: 'barrier', token: 0 }))
}

describe('topics', () => {
  it('deliver client to client, in order per publisher, to every other subscriber, not after unsubscribe', async () => {
    const url = await relay()
    const [publisher, alice, bob, carol] = await Promise.all([connect(url), connect(url), connect(url), connect(url)])
    await Promise.all([subscribe(publisher, 'room:1'), subscribe(alice, 'room:1'), subscribe(bob, 'room:1'), subscribe(carol, 'room:2')])

    const count = 300
    for (let i = 0; i < count; i++) publisher.send({ type: 'topic-pub', id: i + 1, topic: 'room:1', data: { i, text: `hello ${i}` } })
    const lastAck = await publisher.waitAny((m) => m.type === 'topic-ack' && m.id === count)
    expect(expectType(lastAck, 'topic-ack').delivered).toBe(2)

    for (const receiver of [alice, bob]) {
      await receiver.waitAny(() => receiver.all((m) => m.type === 'topic-msg').length >= count)
      const got = receiver.all<TopicMessage>((m) => m.type === 'topic-msg')
      expect(got.map((m) => (m.data as { i: number }).i)).toEqual(Array.from({ length: count }, (_, i) => i))
      expect(got.every((m) => m.from === publisher.replicaId && m.topic === 'room:1')).toBe(true)
      // Per-publisher sequence: strictly increasing by one.
      for (let i = 1; i < got.length; i++) expect((got[i] as TopicMessage).seq).toBe((got[i - 1] as TopicMessage).seq + 1)
    }
    // The publisher's own session and other topics' subscribers get nothing.
    expect(publisher.all((m) => m.type === 'topic-msg')).toHaveLength(0)
    expect(carol.all((m) => m.type === 'topic-msg')).toHaveLength(0)

    bob.send({ type: 'topic-unsub', topic: 'room:1' })
    await call(bob, (id) => ({ type: 'lock-check', id, name: 'barrier', token: 0 }))
    const ack = await call(publisher, (id) => ({ type: 'topic-pub', id, topic: 'room:1', data: 'after' }))
    expect(expectType(ack, 'topic-ack').delivered).toBe(1)
    await alice.waitAny((m) => m.type === 'topic-msg' && m.data === 'after')
    await sleep(100)
    expect(bob.all((m) => m.type === 'topic-msg' && m.data === 'after')).toHaveLength(0)

    // Replying on the topic works the other way round too.
    await call(alice, (id) => ({ type: 'topic-pub', id, topic: 'room:1', data: 'reply' }))
    const reply = await publisher.waitAny((m) => m.type === 'topic-msg')
    expect(reply).toMatchObject({ type: 'topic-msg', from: alice.replicaId, data: 'reply', topic: 'room:1' })
  })

  it('follow the topic rules: a denied subscribe errors without closing, a denied publish errors with its ref', async () => {
    const url = await relay({
      auth: AUTH,
      rules: {
        maps: {},
        topics: {
          'room:*': { publish: 'authenticated', subscribe: 'authenticated' },
          'alerts': { publish: { eq: ['role', 'admin'] }, subscribe: 'authenticated' },
        },
      },
    })
    const admin = await connect(url, { token: await token('ada', { claims: { role: 'admin' } }) })
    const user = await connect(url, { token: await token('bob', { claims: { role: 'user' } }) })

    // No rule matches "secret": closed.
    user.send({ type: 'topic-sub', topic: 'secret' })
    const denied = await user.waitAny((m) => m.type === 'error')
    expect(denied).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } })
    expect(denied.type === 'error' && denied.ref).toBeUndefined()
    // Still connected and served.
    await subscribe(user, 'alerts')
    await subscribe(user, 'room:lobby')

    const forbidden = await call(user, (id) => ({ type: 'topic-pub', id, topic: 'alerts', data: 'fake alert' }))
    expect(forbidden).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } })
    const secret = await call(user, (id) => ({ type: 'topic-pub', id, topic: 'secret', data: 'x' }))
    expect(secret).toMatchObject({ type: 'error', error: { code: 'FORBIDDEN' } })

    const ok = await call(admin, (id) => ({ type: 'topic-pub', id, topic: 'alerts', data: 'real alert' }))
    expect(expectType(ok, 'topic-ack').delivered).toBe(1)
    const message = await user.waitAny((m) => m.type === 'topic-msg')
    expect(message).toMatchObject({ topic: 'alerts', data: 'real alert' })
    expect(user.all((m) => m.type === 'topic-msg' && m.data === 'fake alert')).toHaveLength(0)
    expect(user.ws.readyState).toBe(user.ws.OPEN)
  })

  it('bounds topics per connection', async () => {
    const url = await relay({ limits: { maxTopicsPerConnection: 3 } })
    const client = await connect(url)
    for (const topic of ['a', 'b', 'c', 'd']) client.send({ type: 'topic-sub', topic })
    const error = await client.waitAny((m) => m.type === 'error')
    expect(error).toMatchObject({ error: { code: 'RATE_LIMITED' } })
    const other = await connect(url)
    const ack = await call(other, (id) => ({ type: 'topic-pub', id, topic: 'd', data: 1 }))
    expect(expectType(ack, 'topic-ack').delivered).toBe(0)
    const reached = await call(other, (id) => ({ type: 'topic-pub', id, topic: 'c', data: 1 }))
    expect(expectType(reached, 'topic-ack').delivered).toBe(1)
  })

  it('fans out to 50 subscribers (prints latency)', async () => {
    const url = await relay()
    const subscribers = await Promise.all(Array.from({ length: 50 }, () => connect(url)))
    await Promise.all(subscribers.map((s) => subscribe(s, 'bench')))
    const publisher = await connect(url)
    const latencies: number[] = []
    const messages = 100
    for (const s of subscribers) {
      s.ws.on('message', () => {
        const last = s.messages[s.messages.length - 1]
        if (last?.type === 'topic-msg') latencies.push(performance.now() - (last.data as number))
      })
    }
    for (let i = 0; i < messages; i++) {
      publisher.send({ type: 'topic-pub', id: i + 1, topic: 'bench', data: performance.now() })
      if (i % 10 === 9) await publisher.waitAny((m) => m.type === 'topic-ack' && m.id === i + 1)
    }
    await Promise.all(subscribers.map((s) => s.waitAny(() => s.all((m) => m.type === 'topic-msg').length >= messages)))
    expect(latencies.length).toBe(50 * messages)
    console.log(`topic fan-out to 50 subscribers, ${messages} messages: p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms`)
  })
})

/**
 * A client given several relay URLs fails over between them: a URL that refuses
 * connections is skipped at once (no backoff before the next URL), and when the relay it
 * is live on dies (SIGKILL of a relay process over a shared Postgres), it is live on the
 * next relay right away, its unacknowledged writes are re-sent there and persisted once,
 * and another client of that relay sees them. The measured failover time is printed.
 * Bad URL lists are refused by `createClient` with a typed error.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from '../../server-lite/test/helpers/postgres'
import WebSocket from 'ws'
import { ConfigError, MAX_RELAY_URLS } from '@outpost/core'
import { createRelay } from '@outpost/server-lite'
import { createClient, type ClientStatus, type OutpostClient } from '../src/index'
import { freshDb, until, waitFor } from './helpers'
import { spawnRelay, type RelayChild } from './relay-process'

const cleanups: (() => Promise<void>)[] = []
const schemas: string[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

afterAll(() => dropSchemas(schemas))

const postgres = await postgresMissing()

function open(url: string | readonly string[]): OutpostClient {
  const db = freshDb('failover')
  const client = createClient({ name: db.name, url, mode: 'in-page', engine: { indexedDB: db.indexedDB, WebSocket: WebSocket as never } })
  cleanups.push(() => client.close())
  return client
}

function statusWhere(client: OutpostClient, accept: (status: ClientStatus) => boolean, timeoutMs = 10_000): Promise<ClientStatus> {
  return waitFor(
    {
      subscribe: (listener) => {
        queueMicrotask(() => listener(client.status.get()))
        return client.status.subscribe(listener)
      },
      getSnapshot: () => client.status.get(),
      getError: () => undefined,
      get: async () => client.status.get(),
    },
    accept,
    timeoutMs,
  )
}

/** A ws:// URL on which nothing listens: connecting to it is refused at once. */
async function refusingUrl(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `ws://127.0.0.1:${port}`
}

describe('relay URL list', () => {
  it('refuses an empty list, a non-ws URL and an oversized list with ConfigError', () => {
    const bad: (string | string[])[] = [[], 'http://127.0.0.1:1', ['ws://127.0.0.1:1', 'nope'], 'ws://', Array.from({ length: MAX_RELAY_URLS + 1 }, (_, i) => `ws://relay-${i}.example`)]
    for (const url of bad) {
      let caught: unknown
      try {
        createClient({ name: 'never-opened', url, mode: 'in-page' })
      } catch (error) {
        caught = error
      }
      expect(caught, JSON.stringify(url)).toBeInstanceOf(ConfigError)
      expect((caught as ConfigError).code).toBe('CONFIG_INVALID')
    }
  })

  it('skips a URL that refuses connections and goes live on the next one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'outpost-failover-'))
    const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent' })
    cleanups.push(async () => {
      await relay.close()
      await rm(dataDir, { recursive: true, force: true })
    })
    const refused = await refusingUrl()
    const started = performance.now()
    const client = open([refused, relay.url])
    client.sync('notes')
    expect(client.status.get().relayUrl).toBe(refused)
    const live = await statusWhere(client, (s) => s.connection === 'live')
    const ms = performance.now() - started
    expect(live.relayUrl).toBe(relay.url)
    await client.map('notes').set('n1', { text: 'hello' }).persisted
    console.log(`[failover] first URL refused → live on the second in ${ms.toFixed(0)} ms (engine start included)`)
  })
})

describe.skipIf(postgres !== undefined)('failover between relays over one Postgres (Postgres bus)', () => {
  async function relays(n: number): Promise<RelayChild[]> {
    const schema = freshSchema('fo')
    schemas.push(schema)
    const out: RelayChild[] = []
    for (let i = 0; i < n; i++) {
      const relay = await spawnRelay(['--store', POSTGRES_URL, '--store-schema', schema, '--bus', 'postgres', '--replica-id', `relay-${i}`])
      cleanups.push(() => relay.kill())
      out.push(relay)
    }
    return out
  }

  it('a client whose relay is SIGKILLed is live on the other one at once; its pending writes persist once and reach a client there', async () => {
    const [a, b] = (await relays(2)) as [RelayChild, RelayChild]
    const writer = open([a.url, b.url])
    writer.sync('notes')
    writer.sync('hits')
    await statusWhere(writer, (s) => s.connection === 'live' && s.relayUrl === a.url, 30_000)
    const notes = writer.map<{ text: string }>('notes')
    for (let i = 0; i < 10; i++) await notes.set(`before-${i}`, { text: `before ${i}` }).persisted
    await writer.counter('hits').increment(2).persisted

    // Relay A stops reading (SIGSTOP): these writes reach its socket but are never acknowledged.
    a.child.kill('SIGSTOP')
    const pending = []
    for (let i = 0; i < 40; i++) pending.push(notes.set(`during-${i}`, { text: `during ${i}` }))
    pending.push(writer.counter('hits').increment(3))
    await Promise.all(pending)
    const stuck = await statusWhere(writer, (s) => s.pendingWrites === 41)
    expect(stuck.relayUrl).toBe(a.url)

    const killedAt = performance.now()
    await a.kill()
    const live = await statusWhere(writer, (s) => s.connection === 'live' && s.relayUrl === b.url, 30_000)
    const failoverMs = performance.now() - killedAt
    await Promise.all(pending.map((handle) => handle.persisted))
    const drainedMs = performance.now() - killedAt
    await statusWhere(writer, (s) => s.pendingWrites === 0)
    expect(live.online).toBe(true)
    console.log(`[failover] relay A SIGKILLed → live on relay B in ${failoverMs.toFixed(0)} ms; 41 pending writes persisted through B ${drainedMs.toFixed(0)} ms after the kill`)

    const reader = open([b.url])
    reader.sync('notes')
    reader.sync('hits')
    const rows = await waitFor(reader.map('notes').query(), (r) => r.length === 50, 20_000)
    expect(rows.filter((r) => r.key.startsWith('during-'))).toHaveLength(40)
    // Applied once: a counter would show a re-sent increment applied twice.
    await until(async () => (await reader.counter('hits').get()) === 5, 20_000, 'the counter to reach 5 on relay B')
    expect(await writer.counter('hits').get()).toBe(5)
  })
})

/**
 * Cursors belong to the store, not to a relay: a client that failed over from relay A to
 * relay B over the same Postgres store resumes by the cursor A gave it (issues 11 + 12).
 * Skips with a printed reason without Postgres (fails under OUTPOST_REQUIRE_SERVICES=1).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from '../../server-lite/test/helpers/postgres'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import { ShapeReplica } from '../src/sync/shape-replica'
import { engineOn, freshIdb, unwrap, waitFor } from './helpers'

const DOCS_CURSOR = new ShapeReplica({ map: 'docs' }).cursorKey
const cleanups: (() => Promise<void>)[] = []
const schemas: string[] = []

const postgres = await postgresMissing()

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

afterAll(() => dropSchemas(schemas))

function start(url: string | string[]): Engine {
  const engine = engineOn(freshIdb(), { url })
  cleanups.push(() => engine.close())
  return engine
}

describe.skipIf(postgres !== undefined)('cursors over a shared Postgres store', () => {
  it('a client that fails over from relay A to relay B resumes by the cursor A issued', async () => {
    const schema = freshSchema('cur')
    schemas.push(schema)
    const relays: Relay[] = []
    for (const name of ['a', 'b']) {
      const relay = await createRelay({ port: 0, host: '127.0.0.1', store: POSTGRES_URL, storeSchema: schema, bus: 'postgres', replicaId: `relay-${name}`, logLevel: 'silent' })
      let closed = false
      cleanups.push(async () => {
        if (!closed) await relay.close()
      })
      relays.push(Object.assign(relay, { markClosed: () => (closed = true) }))
    }
    const [a, b] = relays as [Relay & { markClosed: () => void }, Relay & { markClosed: () => void }]
    const writer = start([b.url])
    for (let i = 0; i < 200; i++) unwrap(await writer.set('docs', `d${i}`, { n: i }))
    await waitFor('writer acked', async () => (await writer.status()).pendingWrites === 0, 30_000)

    const reader = start([a.url, b.url])
    unwrap(await reader.subscribeShape({ map: 'docs' }))
    await waitFor('reader live on A', async () => {
      const status = await reader.status()
      return status.connection === 'live' && status.relayUrl === a.url
    }, 30_000)
    await waitFor('cursor stored', async () => typeof (await reader.store?.getMeta(DOCS_CURSOR)) === 'string')
    expect(reader.syncStats.resumes).toMatchObject({ slice: 1, cursor: 0 })

    await reader.setOffline(true)
    for (let i = 0; i < 20; i++) unwrap(await writer.update('docs', `d${i}`, { n: -i }))
    await waitFor('changes acked', async () => (await writer.status()).pendingWrites === 0)
    await a.close()
    a.markClosed()
    await reader.setOffline(false)
    await waitFor('reader live on B', async () => {
      const status = await reader.status()
      return status.connection === 'live' && status.relayUrl === b.url
    }, 30_000)
    expect(reader.syncStats.resumes).toMatchObject({ slice: 1, cursor: 1, merkle: 0 })
    await waitFor('the changes arrived', async () => unwrap(await reader.get('docs', 'd19'))?.['n'] === -19, 10_000)
  })
})

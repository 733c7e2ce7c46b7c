/**
 * The Postgres store passes core's store suites (metadata store and relay records), each
 * store in a schema of its own; plus what only a shared database has to show: two stores
 * (two relays) writing different fields of one key concurrently both keep their field,
 * and sequence numbers stay gapless and in commit order across them.
 */
import { runStoreTests, runSyncStoreTests } from '@outpost/core/testing'
import { lwwUpdateState, mergeLww, type LwwRecordState, type Stamp, type WriteRequest } from '@outpost/core'
import { afterAll, describe, expect, it } from 'vitest'
import { PostgresStore } from '../src/store/postgres-store'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from './helpers/postgres'

const missing = await postgresMissing()
const schemas: string[] = []
const schemaOf = new WeakMap<object, string>()

async function open(schema = freshSchema()): Promise<PostgresStore> {
  if (!schemas.includes(schema)) schemas.push(schema)
  const store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema, poolSize: 4 })
  schemaOf.set(store, schema)
  return store
}

afterAll(async () => {
  if (missing === undefined) await dropSchemas(schemas)
})

describe.skipIf(missing !== undefined)('PostgresStore', () => {
  runStoreTests('postgres', () => open(), {
    reopen: async (store) => {
      const schema = schemaOf.get(store) as string
      await store.close()
      return open(schema)
    },
  })

  runSyncStoreTests('postgres', () => open(), {
    reopen: async (store) => {
      const schema = schemaOf.get(store) as string
      await store.close()
      return open(schema)
    },
  })

  it('merges inside the transaction: two relays writing different fields of one key both keep theirs', async () => {
    const schema = freshSchema()
    const a = await open(schema)
    const b = await open(schema)
    try {
      let n = 0
      const write = (field: string): WriteRequest => {
        const delta = lwwUpdateState({ [field]: ++n }, `${(1_700_000_000_000 + n).toString(36).padStart(10, '0')}-0000-${field}` as Stamp)
        return { map: 'm', kind: 'lww', key: 'shared', decide: (current) => ({ state: current === undefined ? delta : mergeLww(current.state as LwwRecordState, delta) }) }
      }
      await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).applyWrites([write(`f${i}`)])))
      const [record] = await a.getRecords('m', ['shared'])
      expect((record?.state as LwwRecordState).fields.map((f) => f[0]).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `f${i}`).sort())
      const log = await b.readLog('m', 0, 100)
      expect(log.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('agrees on one value between relays with initMeta', async () => {
    const schema = freshSchema()
    const stores = await Promise.all([open(schema), open(schema), open(schema)])
    try {
      const values = await Promise.all(stores.map((s, i) => s.initMeta('storeId', `id-${i}`)))
      expect(new Set(values).size).toBe(1)
    } finally {
      for (const s of stores) await s.close()
    }
  })
})

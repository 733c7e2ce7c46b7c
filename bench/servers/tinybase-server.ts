/**
 * TinyBase's server: `createWsServer` on a `ws` server, each path's MergeableStore
 * persisted to a JSON file by the file persister (so the server holds the data between
 * clients, as a relay must). Seeded by saving the file before any client asks for the path.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocketServer } from 'ws'
import { createMergeableStore, type MergeableStore, type Row } from 'tinybase'
import { createFilePersister } from 'tinybase/persisters/persister-file'
import { createWsServer } from 'tinybase/synchronizers/synchronizer-ws-server'
import { makeRecord } from '../lib/data'
import type { SystemServer } from './system-server'

/** Starts the WsServer on a free port with a temporary directory for its files. */
export async function startTinybaseServer(): Promise<SystemServer> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-tinybase-'))
  const fileOf = (path: string): string => join(dir, `${path.replace(/[^a-z0-9-]/gi, '_')}.json`)
  const live = new Map<string, MergeableStore>()
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const address = wss.address()
  if (address === null || typeof address === 'string') throw new Error('tinybase server: no TCP address')
  const server = createWsServer(wss, (pathId) => {
    const store = createMergeableStore()
    return [createFilePersister(store, fileOf(pathId)), (started: MergeableStore) => live.set(pathId, started)]
  })
  const writeRecords = async (path: string, records: readonly ReturnType<typeof makeRecord>[]): Promise<void> => {
    const running = server.getPathIds().includes(path) ? live.get(path) : undefined
    if (running !== undefined) {
      running.transaction(() => {
        for (const record of records) running.setRow('items', record.id, record as unknown as Row)
      })
      return
    }
    // No client on the path: the server has no store for it, so change what it will load.
    const store = createMergeableStore()
    const persister = createFilePersister(store, fileOf(path))
    await persister.load()
    store.transaction(() => {
      for (const record of records) store.setRow('items', record.id, record as unknown as Row)
    })
    await persister.save()
    await persister.destroy()
  }
  return {
    port: address.port,
    path: '',
    async seed(name, n) {
      await writeRecords(name, Array.from({ length: n }, (_, i) => makeRecord(i)))
      return name
    },
    async change(doc, indexes, rev) {
      await writeRecords(doc, indexes.map((i) => makeRecord(i, rev)))
    },
    async close() {
      await server.destroy()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await rm(dir, { recursive: true, force: true })
    },
  }
}

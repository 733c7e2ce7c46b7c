/**
 * Automerge-repo's sync server: a `Repo` with `NodeWSServerAdapter` that shares nothing on
 * its own (`sharePolicy: false`, as in automerge-repo-sync-server), documents in memory.
 */
import { WebSocketServer } from 'ws'
import { Repo, type AutomergeUrl, type PeerId } from '@automerge/automerge-repo'
import { NodeWSServerAdapter } from '@automerge/automerge-repo-network-websocket'
import { makeRecord, type BenchRecord } from '../lib/data'
import type { SystemServer } from './system-server'

interface ItemsDoc {
  items: Record<string, BenchRecord>
}

/** Starts the sync server on a free port. */
export async function startAutomergeServer(): Promise<SystemServer> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const address = wss.address()
  if (address === null || typeof address === 'string') throw new Error('automerge server: no TCP address')
  const repo = new Repo({
    network: [new NodeWSServerAdapter(wss as unknown as ConstructorParameters<typeof NodeWSServerAdapter>[0])],
    peerId: 'bench-sync-server' as PeerId,
    sharePolicy: async () => false,
  })
  return {
    port: address.port,
    path: '',
    async seed(_name, n) {
      const items: Record<string, BenchRecord> = {}
      for (let i = 0; i < n; i++) {
        const record = makeRecord(i)
        items[record.id] = record
      }
      return repo.create<ItemsDoc>({ items }).url
    },
    async change(doc, indexes, rev) {
      const handle = await repo.find<ItemsDoc>(doc as AutomergeUrl)
      handle.change((d) => {
        for (const i of indexes) {
          const record = makeRecord(i, rev)
          d.items[record.id] = record
        }
      })
    },
    async close() {
      await repo.shutdown()
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
  }
}

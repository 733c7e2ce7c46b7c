/**
 * Yjs's server: y-websocket's own server (`y-websocket/bin/utils`, `setupWSConnection`) on a
 * `ws` server, documents in memory (its default). Seeded by writing into the server's doc.
 */
import { createRequire } from 'node:module'
import { WebSocketServer } from 'ws'
import type { IncomingMessage } from 'node:http'
import type WebSocket from 'ws'
import { makeRecord } from '../lib/data'
import type { SystemServer } from './system-server'

interface YMapLike {
  set(key: string, value: unknown): void
}
interface YDocLike {
  getMap(name: string): YMapLike
  transact(fn: () => void): void
}
interface YUtils {
  setupWSConnection(conn: WebSocket, req: IncomingMessage, options?: { docName?: string; gc?: boolean }): void
  getYDoc(docName: string, gc?: boolean): YDocLike
}

const require = createRequire(import.meta.url)

/** Starts y-websocket's server on a free port. */
export async function startYjsServer(): Promise<SystemServer> {
  const utils = require('y-websocket/bin/utils') as YUtils
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  wss.on('connection', (socket, req) => utils.setupWSConnection(socket, req))
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const address = wss.address()
  if (address === null || typeof address === 'string') throw new Error('yjs server: no TCP address')
  const write = (doc: string, records: readonly ReturnType<typeof makeRecord>[]): void => {
    const ydoc = utils.getYDoc(doc)
    const items = ydoc.getMap('items')
    ydoc.transact(() => {
      for (const record of records) items.set(record.id, record)
    })
  }
  return {
    port: address.port,
    path: '',
    async seed(name, n) {
      write(name, Array.from({ length: n }, (_, i) => makeRecord(i)))
      return name
    },
    async change(doc, indexes, rev) {
      write(doc, indexes.map((i) => makeRecord(i, rev)))
    },
    async close() {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
  }
}

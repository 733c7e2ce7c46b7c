import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { Hlc, PROTOCOL_VERSIONS, encodeMessage, lwwUpdateState, type ReplicaId } from '@outpost/core'
import { createRelay } from '@outpost/server-lite'

const dir = mkdtempSync(join(tmpdir(), 'prof-'))
const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir, logLevel: 'silent', limits: { opsPerSecond: 1e9, opsBurst: 1e9, subjectOpsPerSecond: 1e9, subjectOpsBurst: 1e9 } })
const N = Number(process.env.N ?? 200000)
const clients = await Promise.all(Array.from({ length: 10 }, async (_, c) => {
  const ws = new WebSocket(relay.url)
  await new Promise((r) => ws.once('open', r))
  ws.send(encodeMessage({ type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId: `c${c}` as ReplicaId, clientTime: Date.now() }))
  return { ws, clock: new Hlc({ replicaId: `c${c}` as ReplicaId }) }
}))
const started = performance.now()
let done = 0
await Promise.all(clients.map(async ({ ws, clock }, c) => {
  let acks = 0
  ws.on('message', () => { acks++ })
  const per = N / clients.length
  for (let f = 0; f < per / 100; f++) {
    const changes = Array.from({ length: 100 }, (_, i) => ({ kind: 'lww' as const, map: 'ingest', key: `c${c}k${f * 100 + i}`, state: lwwUpdateState({ title: 'some title text here', group: i % 7, score: f, done: false, updatedAt: Date.now() }, clock.tick()) }))
    ws.send(encodeMessage({ type: 'ops', id: f + 1, changes }))
    while (acks + 4 < f + 2) await new Promise((r) => setImmediate(r))
  }
  while (acks < per / 100 + 1) await new Promise((r) => setTimeout(r, 5))
  done += per
}))
const ms = performance.now() - started
console.log(`ingest ${N} changes from 10 clients: ${(N / ms * 1000).toFixed(0)} changes/s`)
for (const { ws } of clients) ws.close()
await relay.close()

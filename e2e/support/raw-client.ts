/**
 * A client that bypasses the SDK: it speaks the wire protocol to the relay directly (a
 * `ws` socket and core's codec), as a script run by Node with the workspace's source
 * condition (`NODE_SOURCE_FLAGS`). Usage: `raw-client.ts <relay ws url> <changes as JSON>`,
 * where each change is `{ key, record }` for the `tasks` map (a whole-record set). It
 * prints one JSON line: `{ results }`, the relay's per-change answer (null = stored, or
 * the error), and `open`, whether the connection was still open after the ack.
 */
import { Hlc, PROTOCOL_VERSIONS, decodeServerMessage, encodeMessage, lwwSetState, type RecordValue, type ReplicaId, type ServerMessage } from '@outpost/core'
import { WebSocket } from 'ws'

const [url, json] = process.argv.slice(2)
if (url === undefined || json === undefined) throw new Error('usage: raw-client.ts <ws url> <changes JSON>')
const wanted = JSON.parse(json) as { key: string; record: RecordValue }[]
const replicaId = `raw-${process.pid}` as ReplicaId
const clock = new Hlc({ replicaId })
const socket = new WebSocket(url)
const inbox: ServerMessage[] = []
let version = 1
let wake: (() => void) | undefined
socket.on('message', (data: Buffer) => {
  const message = decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.length), { maxFrameBytes: 1 << 24 }, version)
  if (message.type === 'welcome') version = message.version
  inbox.push(message)
  wake?.()
})
async function next(accept: (m: ServerMessage) => boolean): Promise<ServerMessage> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const found = inbox.find(accept)
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`no answer from the relay; got ${JSON.stringify(inbox).slice(0, 300)}`)
    await new Promise<void>((resolve) => {
      wake = resolve
      setTimeout(resolve, 200)
    })
  }
}
await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
socket.send(encodeMessage({ type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId, clientTime: Date.now() }))
await next((m) => m.type === 'welcome')
const changes = wanted.map(({ key, record }) => {
  const deleted = clock.tick()
  return { kind: 'lww' as const, map: 'tasks', key, state: lwwSetState(record, deleted, clock.tick()) }
})
socket.send(encodeMessage({ type: 'ops', id: 1, changes }, version))
const ack = await next((m) => m.type === 'ack' && m.id === 1)
const open = socket.readyState === WebSocket.OPEN
socket.close()
process.stdout.write(`${JSON.stringify({ results: ack.type === 'ack' ? ack.results : null, open })}\n`)

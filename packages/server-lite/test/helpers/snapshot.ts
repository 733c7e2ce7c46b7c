/** Reads a whole map as the relay holds it, through a subscription from empty (no local root). */
import type { Change, ServerMessage } from '@outpost/core'
import type { TestClient } from './client'

let snapshotSub = 50_000

/**
 * Subscribes to `{ map }` with no root, collects the streamed slice until `synced`, then
 * unsubscribes. Resolves to the records by key, whatever the map's kind.
 */
export async function readMap(client: TestClient, map: string, timeoutMs = 30_000): Promise<Map<string, Change>> {
  const sub = ++snapshotSub
  const start = client.messages.length
  const mine = (m: ServerMessage): boolean => 'sub' in m && m.sub === sub
  client.send({ type: 'subscribe', sub, shape: { map } })
  await client.waitAny((m) => mine(m) && (m.type === 'synced' || m.type === 'error'), timeoutMs)
  const records = new Map<string, Change>()
  for (const message of client.messages.slice(start)) {
    if (!mine(message)) continue
    if (message.type === 'error') throw new Error(`subscribing to ${map} failed: ${JSON.stringify(message.error)}`)
    if (message.type === 'changes') for (const change of message.changes) records.set(change.key, change)
    if (message.type === 'synced') break
  }
  client.send({ type: 'unsubscribe', sub })
  return records
}

/** Request/response helpers for the coordination primitives (topics, locks, processors) over a {@link TestClient}. */
import type { ClientMessage, ErrorMessage, LockGrantedMessage, ServerMessage, Value } from '@outpost/core'
import type { TestClient } from './client'

let nextId = 1_000_000

/** Sends the message built with a fresh request id and resolves with its answer (or the error referencing it). */
export async function call<T extends ServerMessage>(client: TestClient, build: (id: number) => ClientMessage, timeoutMs = 20_000): Promise<T | ErrorMessage> {
  const id = ++nextId
  const answers = (m: ServerMessage): boolean => ('id' in m && m.id === id) || (m.type === 'error' && m.ref === id)
  client.send(build(id))
  return (await client.waitAny(answers, timeoutMs)) as T | ErrorMessage
}

/** `lock-acquire`; resolves with the grant or the error. */
export function acquire(client: TestClient, name: string, ttl: number, wait: number, timeoutMs = 20_000): Promise<LockGrantedMessage | ErrorMessage> {
  return call<LockGrantedMessage>(client, (id) => ({ type: 'lock-acquire', id, name, ttl, wait }), timeoutMs)
}

/** `lock-release`; resolves with `lock-released` or the error. */
export function release(client: TestClient, name: string, token: number): Promise<ServerMessage> {
  return call(client, (id) => ({ type: 'lock-release', id, name, token }))
}

/** `invoke`; resolves with `invoke-result` or the error. */
export function invoke(client: TestClient, map: string, key: string, processor: string, args: Value): Promise<ServerMessage> {
  return call(client, (id) => ({ type: 'invoke', id, map, key, processor, args }))
}

/** Throws unless `message` is of `type` (with the message in the failure). */
export function expectType<T extends ServerMessage['type']>(message: ServerMessage, type: T): Extract<ServerMessage, { type: T }> {
  if (message.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(message).slice(0, 400)}`)
  return message as Extract<ServerMessage, { type: T }>
}

/** The p-th percentile (0..100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Redis for tests: the local server (127.0.0.1:6379, or `OUTPOST_REDIS_URL`), a fresh key
 * prefix per cluster so runs never share state, and the rule for a machine without Redis:
 * tests skip with a printed reason, except under `OUTPOST_REQUIRE_SERVICES=1` (CI), where
 * a missing service fails them. The same rule as `postgres.ts`.
 */
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

/** Where the tests' Redis is. */
export const REDIS_URL = process.env['OUTPOST_REDIS_URL'] ?? 'redis://127.0.0.1:6379'

/** Undefined when Redis answers; otherwise why it does not (and, under OUTPOST_REQUIRE_SERVICES=1, it throws). */
export async function redisMissing(): Promise<string | undefined> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 3_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  client.on('error', () => undefined)
  let reason: string | undefined
  try {
    await client.connect()
    await client.ping()
  } catch (error) {
    reason = `Redis at ${REDIS_URL} is not reachable (${error instanceof Error ? error.message : String(error)})`
  } finally {
    client.disconnect()
  }
  if (reason !== undefined) {
    if (process.env['OUTPOST_REQUIRE_SERVICES'] === '1') throw new Error(`OUTPOST_REQUIRE_SERVICES=1 but ${reason}`)
    console.log(`[redis] skipping: ${reason}`)
  }
  return reason
}

/** A key prefix no other run uses. */
export function freshPrefix(): string {
  return `outpost-test:${randomBytes(6).toString('hex')}:`
}

/** Deletes every key under `prefix` (best effort: leftovers harm nothing but memory). */
export async function dropPrefix(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

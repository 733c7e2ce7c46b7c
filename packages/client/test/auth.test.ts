/**
 * The `auth` callback against a relay that verifies JWTs (HS256, no clock tolerance):
 * the engine asks the tab's callback for a token, asks again when the token expires, and
 * writes made around the expiry still reach the relay.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { createRelay, type Relay } from '@outpost/server-lite'
import { createClient, type OutpostClient } from '../src/index'
import { freshDb, until } from './helpers'

const SECRET = 'a-test-secret-that-is-at-least-32-characters-long'
let relay: Relay
let dataDir: string
let client: OutpostClient | undefined

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'outpost-client-auth-'))
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent', auth: { secret: SECRET, clockToleranceSec: 0 } })
})

afterAll(async () => {
  await client?.close()
  await relay?.close()
  await rm(dataDir, { recursive: true, force: true })
})

it('calls auth for a token, again when it expires, and keeps writes flowing', async () => {
  const issued: number[] = []
  const auth = async (): Promise<string> => {
    issued.push(Date.now())
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('user-1')
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
      .sign(new TextEncoder().encode(SECRET))
  }
  const db = freshDb('auth')
  client = createClient({ name: db.name, url: relay.url, mode: 'in-page', auth, engine: { indexedDB: db.indexedDB, WebSocket: WebSocket as never } })
  const notes = client.map<{ text: string }>('notes')
  await notes.set('before', { text: 'first token' }).persisted
  expect(issued.length).toBeGreaterThanOrEqual(1)

  // Outlive the first token: the relay closes the socket, the engine asks for a new token.
  const firstExpiry = (issued[0] as number) + 2000
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstExpiry - Date.now() + 300)))
  const handle = notes.set('after', { text: 'second token' })
  await handle.persisted
  expect(handle.concern).toBe('persisted')
  // Only a token issued after the first one can have carried this write.
  expect(issued.length).toBeGreaterThanOrEqual(2)
  await until(() => client!.status.get().online, 5000, 'live again')
})

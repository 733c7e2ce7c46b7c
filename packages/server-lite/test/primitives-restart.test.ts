/**
 * Fencing tokens survive a crash: the relay runs as a child process (bin/outpost-server.js),
 * is killed with SIGKILL while a lease is held, and restarts on the same data directory.
 * Tokens issued afterwards are strictly greater than every token issued before, and the
 * lease held at the crash still holds until its TTL.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, tempDir } from './helpers/client'
import { acquire, expectType, release } from './helpers/primitives'
import { RELAY_NODE_ARGS } from './helpers/relay-command'

const children: ChildProcess[] = []
const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(dataDir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...RELAY_NODE_ARGS, '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    for (const line of out.split('\n')) {
      if (!line.startsWith('{')) continue
      const entry = JSON.parse(line) as { msg?: string; port?: number }
      if (entry.msg === 'listening' && typeof entry.port === 'number') return { child, port: entry.port }
    }
    if (child.exitCode !== null) throw new Error(`relay exited: ${err}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`relay did not start: ${out} ${err}`)
}

describe('fencing tokens across a relay crash', () => {
  it('strictly increase after SIGKILL + restart, and the lease held at the crash lasts its TTL', async () => {
    const dir = tempDir()
    cleanups.push(dir.remove)
    const first = await start(dir.path)
    const client = await TestClient.connect(`ws://127.0.0.1:${first.port}`).then((c) => c.client)
    const before: number[] = []
    for (let i = 0; i < 5; i++) {
      const grant = expectType(await acquire(client, 'deploy', 5_000, 0), 'lock-granted')
      before.push(grant.token)
      expectType(await release(client, 'deploy', grant.token), 'lock-released')
    }
    const held = expectType(await acquire(client, 'deploy', 4_000, 0), 'lock-granted')
    before.push(held.token)
    first.child.kill('SIGKILL')
    await client.closed

    const second = await start(dir.path)
    const info = (await (await fetch(`http://127.0.0.1:${second.port}/locks/deploy`)).json()) as { current: number; holder: boolean }
    expect(info.current).toBe(held.token)
    expect(info.holder).toBe(Date.now() < held.expiresAt)
    const again = await TestClient.connect(`ws://127.0.0.1:${second.port}`).then((c) => c.client)
    cleanups.push(() => again.close())
    const grant = expectType(await acquire(again, 'deploy', 5_000, 10_000), 'lock-granted')
    // Not handed out while the pre-crash lease could still be in use.
    expect(Date.now()).toBeGreaterThanOrEqual(held.expiresAt - 5)
    expect(grant.token).toBeGreaterThan(Math.max(...before))
    for (let i = 1; i < before.length; i++) expect(before[i]).toBeGreaterThan(before[i - 1] as number)
  })
})

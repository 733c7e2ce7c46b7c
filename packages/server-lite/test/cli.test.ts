/**
 * The relay as a child process, the way it runs in production: `bin/outpost-server.js`
 * prints a JSON `listening` line with its port, drains on SIGTERM (clients get
 * SHUTTING_DOWN and close code 1012, the process exits 0), keeps acknowledged data across
 * a restart on the same data directory, and refuses an invalid configuration with exit
 * code 1 and a message naming each bad field.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, tempDir } from './helpers/client'
import { update } from './helpers/changes'
import { LocalShape } from './helpers/replica'
import { RELAY_NODE_ARGS } from './helpers/relay-command'

const children: ChildProcess[] = []
const dirs: { remove: () => void }[] = []
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
  for (const dir of dirs.splice(0)) dir.remove()
})

function run(args: string[], env: Record<string, string> = {}): { child: ChildProcess; stdout: () => string; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [...RELAY_NODE_ARGS, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, stdout: () => out, stderr: () => err, exit }
}

async function listening(proc: ReturnType<typeof run>): Promise<number> {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    for (const line of proc.stdout().split('\n')) {
      if (!line.startsWith('{')) continue
      const entry = JSON.parse(line) as { msg?: string; port?: number }
      if (entry.msg === 'listening' && typeof entry.port === 'number') return entry.port
    }
    if (proc.child.exitCode !== null) throw new Error(`relay exited: ${proc.stderr()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`relay did not start: ${proc.stdout()} ${proc.stderr()}`)
}

describe('outpost-server (child process)', () => {
  it('drains on SIGTERM with 1012 and exit 0, and keeps acked data across a restart', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const first = run(['--port', '0', '--data-dir', dir.path])
    const port = await listening(first)
    expect(first.stdout()).toContain('no auth configured')
    const { client } = await TestClient.connect(`ws://127.0.0.1:${port}`)
    const writes = Array.from({ length: 200 }, (_, i) => update(client.clock, 'todos', `t${i}`, { i }))
    expect((await client.ops(writes)).results.every((r) => r === null)).toBe(true)
    first.child.kill('SIGTERM')
    const bye = await client.waitAny((m) => m.type === 'error')
    expect(bye.type === 'error' && bye.error.code).toBe('SHUTTING_DOWN')
    const closed = await client.closed
    expect(closed.code).toBe(1012)
    expect(closed.reason).toMatch(/reconnect/)
    expect(await first.exit).toBe(0)

    const second = run(['--port', '0'], { OUTPOST_DATA_DIR: dir.path, OUTPOST_LOG_LEVEL: 'warn' })
    const port2 = await listening(second)
    const { client: again } = await TestClient.connect(`ws://127.0.0.1:${port2}`)
    const local = new LocalShape({ map: 'todos' })
    await local.sync(again)
    expect(local.states.size).toBe(200)
    await again.close()
    second.child.kill('SIGINT')
    expect(await second.exit).toBe(0)
  })

  it('exits 1 with a readable message on invalid configuration, and prints --help', async () => {
    const bad = run(['--port', 'eighty', '--jwt-secret', 'short'])
    expect(await bad.exit).toBe(1)
    expect(bad.stderr()).toMatch(/Invalid relay configuration/)
    expect(bad.stderr()).toMatch(/port: /)
    expect(bad.stderr()).toMatch(/auth\.secret: an HMAC secret must be at least 32 characters/)
    const help = run(['--help'])
    expect(await help.exit).toBe(0)
    expect(help.stdout()).toMatch(/Usage: outpost-server/)
  })
})

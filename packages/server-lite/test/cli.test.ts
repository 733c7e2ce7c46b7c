/**
 * The relay as a child process, the way it runs in production: `bin/outpost-server.js`
 * prints a JSON `listening` line with its port, drains on SIGTERM (clients get
 * SHUTTING_DOWN and close code 1012, the process exits 0), keeps acknowledged data across
 * a restart on the same data directory, and refuses an invalid configuration with exit
 * code 1 and a message naming each bad field; `outpost-server migrate` brings a Postgres
 * schema up to date.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { TestClient, tempDir } from './helpers/client'
import { update } from './helpers/changes'
import { LocalShape } from './helpers/replica'
import { RELAY_NODE_ARGS } from './helpers/relay-command'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from './helpers/postgres'

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

  it('answers each common mistake with one line that says what to do', async () => {
    const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
    const shown = run(['--version'])
    expect(await shown.exit).toBe(0)
    expect(shown.stdout()).toBe(`outpost-server ${version}\n`)

    const oneLine = async (args: string[], expected: RegExp): Promise<void> => {
      const proc = run(args)
      expect(await proc.exit).toBe(1)
      const lines = proc.stderr().trimEnd().split('\n')
      expect(lines, proc.stderr()).toHaveLength(1)
      expect(lines[0]).toMatch(expected)
      expect(proc.stderr()).not.toMatch(/\n\s+at /)
    }
    // An unknown flag is reported as unknown, never as "needs a value", with or without a value after it.
    await oneLine(['--bogus', '1'], /^outpost-server: --bogus: unknown flag; run outpost-server --help to see the options$/)
    await oneLine(['--verbose'], /^outpost-server: --verbose: unknown flag; run outpost-server --help to see the options$/)
    await oneLine(['--port', 'abc'], /^outpost-server: --port: "abc" is not a whole number; use a port from 0 \(any free port\) to 65535, e\.g\. 8787$/)
    await oneLine(['--port'], /^outpost-server: --port: needs a value, e\.g\. --port 8787$/)

    // A busy port: one line naming the port and what to do, not an EADDRINUSE stack trace.
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const busy = (blocker.address() as { port: number }).port
    const dir = tempDir()
    dirs.push(dir)
    try {
      await oneLine(['--port', String(busy), '--data-dir', dir.path], new RegExp(`^outpost-server: port ${busy} on 127\\.0\\.0\\.1 is already in use .*--port <n>`))
    } finally {
      blocker.close()
    }
  })

  it('prints --help as aligned columns', async () => {
    const help = run(['--help'])
    expect(await help.exit).toBe(0)
    const rows = help.stdout().split('\n').filter((line) => /^ {2}-/.test(line))
    expect(rows.length).toBeGreaterThanOrEqual(12)
    // The description column starts at the same place on every row, and so does the env column.
    const descriptionColumn = new Set(rows.map((row) => /^ {2}\S.*?\S {2,}(?=\S)/.exec(row)?.[0].length))
    expect(descriptionColumn.size).toBe(1)
    const envColumn = new Set(rows.filter((row) => row.includes('OUTPOST_')).map((row) => row.indexOf('OUTPOST_')))
    expect(envColumn.size).toBe(1)
  })
})

const postgres = await postgresMissing()
const migrated: string[] = []
afterAll(async () => {
  if (postgres === undefined) await dropSchemas(migrated)
})

describe.skipIf(postgres !== undefined)('outpost-server migrate', () => {
  it('creates a Postgres schema at the current version, then reports it up to date', async () => {
    const schema = freshSchema('cli')
    migrated.push(schema)
    const first = run(['migrate', '--store', POSTGRES_URL, '--store-schema', schema])
    expect(await first.exit).toBe(0)
    expect(first.stdout()).toMatch(new RegExp(`schema ${schema} migrated to version \\d+ \\(applied 1, 2`))
    const again = run(['migrate', '--store', POSTGRES_URL, '--store-schema', schema])
    expect(await again.exit).toBe(0)
    expect(again.stdout()).toMatch(new RegExp(`schema ${schema} is up to date`))
  })
})

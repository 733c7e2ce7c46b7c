/**
 * Relay CPU per ingested change, for A/B work on the write path: starts the relay CLI of
 * the checkout at `--root` (default this one) as its own process, runs the relay workload's
 * 50-client ingest (frames of 100, 4 in flight) for a warm-up and then `--changes` changes,
 * and prints changes/s plus the relay process's CPU (utime+stime from /proc) per change.
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/ingest-cpu.ts [--root DIR] [--changes N] [--clients N] [--prof DIR] [--limits JSON]
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import type { Change } from '@outpost/core'
import { makeRecord } from '../lib/data'
import { WireClient } from '../lib/outpost-wire'
import { BENCH_LIMITS } from '../servers/outpost-server'
import { NODE_SOURCE_FLAGS } from '../../scripts/source-conditions'

const BATCH = 100
const IN_FLIGHT = 4

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? (process.argv[i + 1] as string) : fallback
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

async function main(): Promise<void> {
  const root = resolve(arg('root', join(import.meta.dirname, '../..')))
  const total = Number(arg('changes', '50000'))
  const clients = Number(arg('clients', '50'))
  const prof = arg('prof', '')
  const dir = await mkdtemp(join(tmpdir(), 'outpost-ingest-cpu-'))
  const config = join(dir, 'relay.json')
  const extra = JSON.parse(arg('limits', '{}')) as Record<string, unknown>
  await writeFile(config, JSON.stringify({ limits: { ...BENCH_LIMITS, ...extra }, logLevel: 'error' }))
  const flags = prof === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`]
  const child = spawn(process.execPath, [...NODE_SOURCE_FLAGS, ...flags, 'packages/server-lite/src/cli.ts', '--port', '0', '--data-dir', join(dir, 'data'), '--config', config], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  process.once('exit', () => void child.kill('SIGKILL'))
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const port = await new Promise<number>((done) => {
    lines.on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as { port?: number; msg?: string }
        if (parsed.msg === 'listening' && typeof parsed.port === 'number') done(parsed.port)
      } catch {
        // not a log line
      }
    })
  })
  const url = `ws://127.0.0.1:${port}`
  const run = async (label: string, count: number, map: string): Promise<void> => {
    const perClient = Math.floor(count / clients / BATCH) * BATCH
    const conns: WireClient[] = []
    for (let k = 0; k < clients; k++) conns.push(await WireClient.connect(url, `${map}-${k}`))
    const frames = conns.map((c, k) => Array.from({ length: perClient / BATCH }, (_, f) => Array.from({ length: BATCH }, (_, j) => c.change(map, makeRecord(k * perClient + f * BATCH + j)))))
    const cpu0 = await cpuTicks(child.pid as number)
    const t0 = performance.now()
    await Promise.all(
      conns.map(async (c, k) => {
        let next = 0
        const lane = async (): Promise<void> => {
          while (next < perClient / BATCH) await c.ops(frames[k]?.[next++] as Change[])
        }
        await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
      }),
    )
    const seconds = (performance.now() - t0) / 1000
    const cpu = ((await cpuTicks(child.pid as number)) - cpu0) / 100
    const n = perClient * clients
    const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
    console.log(`${label}: ${n} changes, ${Math.round(n / seconds)} changes/s, relay CPU ${((cpu * 1e6) / n).toFixed(1)} µs/change (${cpu.toFixed(2)} s), load ${load}`)
    await Promise.all(conns.map((c) => c.close()))
  }
  await run('warm-up', Math.min(total, 20_000), 'warm')
  await run(`ingest ${clients} clients`, total, 'ingest')
  const exited = new Promise((done) => child.once('exit', done))
  child.kill('SIGTERM')
  await exited
  await rm(dir, { recursive: true, force: true })
}

await main()

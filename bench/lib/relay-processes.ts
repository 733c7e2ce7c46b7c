/**
 * Relay processes for the scale-out workload: the relay CLI from source (as `npm run
 * cluster` starts it), on LMDB or on a Postgres schema shared by several, and the CPU each
 * process spent, from `/proc/<pid>/stat` (utime + stime). The Postgres server's share is
 * counted too: the backends serving a relay's connections are found by matching the
 * relay's TCP sockets (`/proc/<pid>/fd` → `/proc/net/tcp*`) with `pg_stat_activity`'s
 * `client_port`, so the figure is the work done for these relays, not for other users of
 * the same Postgres.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { createInterface } from 'node:readline'
import pg from 'pg'
import { NODE_SOURCE_FLAGS } from '../../scripts/source-conditions'

/** A relay process. */
export interface RelayProcess {
  readonly pid: number
  readonly port: number
  readonly url: string
  readonly child: ChildProcess
}

/** Starts the relay CLI with `args` from `root`; resolves once it logs `listening`. */
export async function startRelayProcess(root: string, args: readonly string[]): Promise<RelayProcess> {
  const child = spawn(process.execPath, [...NODE_SOURCE_FLAGS, 'packages/server-lite/src/cli.ts', '--host', '127.0.0.1', '--port', '0', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  // A harness stopped midway (Ctrl-C, timeout) must not leave relays behind.
  const orphanGuard = (): void => void child.kill('SIGKILL')
  process.once('exit', orphanGuard)
  child.once('exit', () => process.off('exit', orphanGuard))
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay ${args.join(' ')} did not log "listening" within 60 s`)), 60_000)
    child.once('exit', (code) => reject(new Error(`relay ${args.join(' ')} exited with ${String(code)} before listening`)))
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: unknown; port?: unknown }
        if (entry.msg === 'listening' && typeof entry.port === 'number') {
          clearTimeout(timer)
          resolve(entry.port)
        }
      } catch {
        // Not a JSON log line.
      }
    })
  })
  return { pid: child.pid as number, port, url: `ws://127.0.0.1:${port}`, child }
}

/** Stops a relay (SIGTERM, then SIGKILL after 10 s). */
export async function stopRelayProcess(relay: RelayProcess): Promise<void> {
  if (relay.child.exitCode !== null || relay.child.signalCode !== null) return
  const exited = new Promise((resolve) => relay.child.once('exit', resolve))
  relay.child.kill('SIGTERM')
  const timer = setTimeout(() => relay.child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

/** Runs `outpost-server migrate` on `schema`. */
export function migrateSchema(root: string, store: string, schema: string): void {
  const result = spawnSync(process.execPath, [...NODE_SOURCE_FLAGS, 'packages/server-lite/src/cli.ts', 'migrate', '--store', store, '--store-schema', schema], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  if (result.status !== 0) throw new Error(`outpost-server migrate failed: ${result.stderr || result.stdout}`)
}

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** CPU time (ms, user + system) a process has used so far, or undefined once it is gone. */
export function cpuMs(pid: number): number | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // Fields after the command name (which may hold spaces, inside parentheses): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND
}

/** Local ports of `pid`'s TCP connections to port `remotePort` (e.g. 5432). */
function localPortsTo(pid: number, remotePort: number): number[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match?.[1] !== undefined) inodes.add(match[1])
    } catch {
      // The descriptor closed while we looked.
    }
  }
  const ports: number[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      const local = cols[1]
      const remote = cols[2]
      const inode = cols[9]
      if (local === undefined || remote === undefined || inode === undefined || !inodes.has(inode)) continue
      if (Number.parseInt(remote.split(':')[1] ?? '', 16) === remotePort) ports.push(Number.parseInt(local.split(':')[1] ?? '', 16))
    }
  }
  return ports
}

/** The PIDs of the Postgres backends serving `pids`' connections (Postgres on this machine). */
export async function postgresBackendsOf(store: string, pids: readonly number[]): Promise<number[]> {
  const url = new URL(store)
  const serverPort = Number(url.port || 5432)
  const ports = pids.flatMap((pid) => localPortsTo(pid, serverPort))
  if (ports.length === 0) return []
  const client = new pg.Client({ connectionString: store })
  await client.connect()
  try {
    const { rows } = await client.query<{ pid: number }>('select pid from pg_stat_activity where client_port = any($1::int[])', [ports])
    return rows.map((r) => r.pid)
  } finally {
    await client.end()
  }
}

/** CPU used by a set of processes between {@link CpuMeter.start} and `stop`. */
export class CpuMeter {
  readonly #before = new Map<number, number>()

  /** Notes each process's CPU so far. */
  start(pids: readonly number[]): void {
    this.#before.clear()
    for (const pid of pids) this.#before.set(pid, cpuMs(pid) ?? 0)
  }

  /**
   * CPU ms each of `pids` used since `start` (a process that appeared since counts from 0;
   * one that exited meanwhile is lost, which only undercounts).
   */
  stop(pids: readonly number[]): number[] {
    return pids.map((pid) => Math.max(0, (cpuMs(pid) ?? 0) - (this.#before.get(pid) ?? 0)))
  }
}

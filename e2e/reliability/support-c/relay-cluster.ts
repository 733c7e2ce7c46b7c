/**
 * A cluster of relay processes over one Postgres schema, for the cluster scenario: the relay
 * CLI run from its TypeScript source (as `npm run cluster` does), the schema migrated once
 * with `outpost-server migrate` before any relay starts, each relay in a process group of
 * its own with its log in a file. A relay can be SIGKILLed and started again on the same
 * port, so clients that know its URL find it again. Processes are stopped by PID only.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { NODE_SOURCE_FLAGS } from '../../../scripts/source-conditions'
import { isAlive, logTail, startServer, stopGroup, stopGracefully } from '../../support/processes'

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)))
const RELAY_CLI = join(ROOT, 'packages', 'server-lite', 'src', 'cli.ts')

/** Options of {@link RelayCluster.start}. */
export interface RelayClusterOptions {
  /** Relay processes. */
  readonly relays: number
  /** `postgres://` URL of the shared store. */
  readonly store: string
  /** The schema, unique to the run. */
  readonly schema: string
  /** `postgres`, `none` or a `redis://` URL. */
  readonly bus: string
  /** Extra CLI flags for every relay. */
  readonly args?: readonly string[]
}

/** One relay of the cluster. */
export interface ClusterRelay {
  readonly index: number
  /** `relay-<index>`: stable across restarts, so logs and figures name the same relay. */
  readonly replicaId: string
  /** Its port (the same after a restart). */
  readonly port: number
  /** `ws://127.0.0.1:<port>`. */
  readonly url: string
  /** `http://127.0.0.1:<port>`. */
  readonly httpUrl: string
  /** The running process, or undefined while it is down. */
  pid: number | undefined
  /** Where its output goes (appended across restarts). */
  readonly logFile: string
  /** Starts so far (1 after the cluster started). */
  starts: number
}

/** See the module comment. */
export class RelayCluster {
  readonly relays: readonly ClusterRelay[]
  readonly logDir: string
  readonly #options: RelayClusterOptions

  private constructor(options: RelayClusterOptions, relays: ClusterRelay[], logDir: string) {
    this.#options = options
    this.relays = relays
    this.logDir = logDir
  }

  /** Migrates the schema, then starts `relays` relays (one at a time: they compile the same sources). */
  static async start(options: RelayClusterOptions): Promise<RelayCluster> {
    const logDir = mkdtempSync(join(tmpdir(), `outpost-${options.schema}-`))
    await promisify(execFile)(process.execPath, [...NODE_SOURCE_FLAGS, RELAY_CLI, 'migrate', '--store', options.store, '--store-schema', options.schema], { cwd: ROOT, timeout: 60_000 })
    const relays: ClusterRelay[] = []
    const cluster = new RelayCluster(options, relays, logDir)
    try {
      for (let index = 0; index < options.relays; index++) {
        const logFile = join(logDir, `relay-${index}.log`)
        const pid = await cluster.#spawn(index, 0, logFile)
        relays.push({
          index,
          replicaId: `relay-${index}`,
          port: pid.port,
          url: `ws://127.0.0.1:${pid.port}`,
          httpUrl: `http://127.0.0.1:${pid.port}`,
          pid: pid.pid,
          logFile,
          starts: 1,
        })
      }
    } catch (error) {
      await cluster.stop()
      throw error
    }
    return cluster
  }

  async #spawn(index: number, port: number, logFile: string): Promise<{ pid: number; port: number }> {
    const o = this.#options
    return startServer({
      name: `relay-${index}`,
      args: [
        ...NODE_SOURCE_FLAGS,
        RELAY_CLI,
        '--store', o.store,
        '--store-schema', o.schema,
        '--bus', o.bus,
        '--replica-id', `relay-${index}`,
        '--host', '127.0.0.1',
        '--port', String(port),
        '--log-level', 'warn',
        ...(o.args ?? []),
      ],
      cwd: ROOT,
      logFile,
      timeoutMs: 60_000,
    })
  }

  /** The relay at `index`. */
  relay(index: number): ClusterRelay {
    const relay = this.relays[index]
    if (relay === undefined) throw new RangeError(`no relay ${index} (the cluster has ${this.relays.length})`)
    return relay
  }

  /** SIGKILLs relay `index` (its process group) and waits until the process is gone. */
  async kill(index: number): Promise<void> {
    const relay = this.relay(index)
    const pid = relay.pid
    if (pid === undefined) return
    stopGroup(pid, 'SIGKILL')
    const deadline = Date.now() + 10_000
    while (isAlive(pid) && Date.now() < deadline) await sleep(10)
    relay.pid = undefined
  }

  /** Starts relay `index` again on its port; resolves once it listens. */
  async restart(index: number): Promise<void> {
    const relay = this.relay(index)
    if (relay.pid !== undefined) throw new Error(`relay ${index} is running (pid ${relay.pid})`)
    // The port was just freed by a killed process; a retry covers the moment the kernel holds it.
    let lastError: unknown
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        relay.pid = (await this.#spawn(index, relay.port, relay.logFile)).pid
        relay.starts++
        return
      } catch (error) {
        lastError = error
        await sleep(200)
      }
    }
    throw lastError
  }

  /** Waits until every running relay answers `/readyz` with 200 (or throws after `timeoutMs`). */
  async ready(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (const relay of this.relays) {
      if (relay.pid === undefined) continue
      for (;;) {
        const status = await fetch(`${relay.httpUrl}/readyz`).then((r) => r.status, () => 0)
        if (status === 200) break
        if (Date.now() > deadline) throw new Error(`relay ${relay.index} not ready within ${timeoutMs} ms (last status ${status}); log ${relay.logFile}:\n${logTail(relay.logFile)}`)
        await sleep(100)
      }
    }
  }

  /** The PIDs of the running relays. */
  pids(): number[] {
    return this.relays.flatMap((r) => (r.pid === undefined ? [] : [r.pid]))
  }

  /** The last lines of every relay's log, for a failure message. */
  logTails(lines = 20): string {
    return this.relays.map((r) => `--- relay ${r.index} (${r.logFile})\n${logTail(r.logFile, lines)}`).join('\n')
  }

  /** Deletes the relays' logs (after a passing run; a failing one keeps them for a post-mortem). */
  removeLogs(): void {
    rmSync(this.logDir, { recursive: true, force: true })
  }

  /** Stops every running relay (SIGTERM, then SIGKILL after the grace period). */
  async stop(): Promise<void> {
    await Promise.all(
      this.relays.map(async (relay) => {
        if (relay.pid === undefined) return
        await stopGracefully(relay.pid, 5_000)
        relay.pid = undefined
      }),
    )
  }
}

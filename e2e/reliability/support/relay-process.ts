/**
 * The relay of the reliability scenarios: the real `outpost-server` CLI, run from source
 * (`node --conditions=@outpost/source --import tsx packages/server-lite/src/cli.ts`) as a
 * child process on LMDB in a temporary directory, on a fixed free port, so a scenario can
 * SIGKILL it and start it again on the same data and the same port: devices reconnect
 * to the address they always had, as they would to a relay behind a stable hostname.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { NODE_SOURCE_FLAGS } from '../../../scripts/source-conditions'
import { isAlive, logTail, startServer, stopProcess } from '../../support/processes'
import { REPO_ROOT } from '../../support/stack'

/** The relay CLI's TypeScript entry. */
const RELAY_CLI = join(REPO_ROOT, 'packages', 'server-lite', 'src', 'cli.ts')

/** A free TCP port on 127.0.0.1 (bound and released; the relay binds it right after). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port for the relay')
  return address.port
}

/** Options of {@link startRelayProcess}. */
export interface RelayProcessOptions {
  /** The data directory (default: a fresh temporary one, removed by `dispose`). */
  readonly dataDir?: string
  /** Extra CLI flags. */
  readonly args?: readonly string[]
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>
}

/** A relay child process that can be killed and started again on the same data and port. */
export interface RelayProcess {
  readonly port: number
  /** `ws://127.0.0.1:<port>`. */
  readonly url: string
  readonly dataDir: string
  /** Its log file (every start appends to it). */
  readonly logFile: string
  /** The current PID (changes on every restart). */
  pid(): number
  /** How many times it was started (1 after the first start). */
  starts(): number
  /** SIGKILLs the process and waits until it is gone (no flush, no goodbye to clients). */
  kill(): Promise<void>
  /** Starts it again on the same data directory and port. */
  restart(): Promise<void>
  /** SIGTERM (the relay drains and flushes), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>
  /** Stops it and removes the data directory if this module created it. */
  dispose(): Promise<void>
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

/** Starts the relay; see the module comment. */
export async function startRelayProcess(options: RelayProcessOptions = {}): Promise<RelayProcess> {
  const ownDir = options.dataDir === undefined
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'outpost-reliability-'))
  const logFile = join(dataDir, '..', `${dataDir.split('/').pop() ?? 'relay'}.log`)
  const port = await freePort()
  let pid = 0
  let starts = 0
  let running = false

  const launch = async (): Promise<void> => {
    // The port was just released by the killed process; a start that loses a race for it retries.
    for (let attempt = 1; ; attempt++) {
      try {
        const started = await startServer({
          name: 'relay',
          args: [...NODE_SOURCE_FLAGS, RELAY_CLI, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, ...(options.args ?? [])],
          cwd: REPO_ROOT,
          logFile,
          env: { ...process.env, OUTPOST_LOG_LEVEL: 'info', ...options.env },
          timeoutMs: 60_000,
        })
        pid = started.pid
        starts++
        running = true
        return
      } catch (error) {
        if (attempt >= 5 || !/EADDRINUSE/.test(logTail(logFile, 5))) throw error
        await sleep(200 * attempt)
      }
    }
  }

  const kill = async (signal: NodeJS.Signals, graceMs: number): Promise<void> => {
    if (!running) return
    running = false
    stopProcess(pid, signal)
    if (!(await waitGone(pid, graceMs))) {
      stopProcess(pid, 'SIGKILL')
      if (!(await waitGone(pid, 10_000))) throw new Error(`relay ${pid} survived SIGKILL`)
    }
  }

  // The relay runs detached (its own process group, so a kill reaches it alone); if this
  // process exits without disposing of it (a timeout, an interrupted run), it must not linger.
  const orphanGuard = (): void => {
    if (running) stopProcess(pid, 'SIGKILL')
  }
  process.once('exit', orphanGuard)
  await launch()
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    dataDir,
    logFile,
    pid: () => pid,
    starts: () => starts,
    kill: () => kill('SIGKILL', 10_000),
    restart: async () => {
      if (running) throw new Error('restart: the relay is still running; kill or stop it first')
      await launch()
    },
    stop: (graceMs = 10_000) => kill('SIGTERM', graceMs),
    dispose: async () => {
      await kill('SIGTERM', 5_000)
      process.off('exit', orphanGuard)
      if (ownDir) {
        rmSync(dataDir, { recursive: true, force: true })
        rmSync(logFile, { force: true })
      }
    },
  }
}

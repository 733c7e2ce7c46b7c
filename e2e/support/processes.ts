/**
 * Child processes of the suite (the relay, the static server): started detached with
 * their output in a log file, so they do not depend on the process that started them
 * (the global setup starts the relay, a test worker may restart it), and stopped by PID
 * only, never by name.
 */
import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

/** How to start one server process. */
export interface ServerSpec {
  /** A name for messages ("relay", "web"). */
  readonly name: string
  /** The program to run (default: this Node). */
  readonly command?: string
  /** Its arguments (after `node` by default). */
  readonly args: readonly string[]
  readonly cwd: string
  /** Where stdout and stderr go (appended, so a restarted relay keeps one log). */
  readonly logFile: string
  readonly env?: NodeJS.ProcessEnv
  /** How long the server may take to print its "listening" line. */
  readonly timeoutMs?: number
}

/** A started server. */
export interface StartedServer {
  readonly pid: number
  readonly port: number
}

/** The last `lines` lines of a log, for error messages. */
export function logTail(logFile: string, lines = 30): string {
  if (!existsSync(logFile)) return '(no log)'
  return readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n')
}

/** The port of the first JSON log line with `msg: "listening"` after byte `from`. */
function listeningPort(logFile: string, from: number): number | undefined {
  if (!existsSync(logFile)) return undefined
  const text = readFileSync(logFile).subarray(from).toString('utf8')
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const entry = JSON.parse(line) as { msg?: unknown; port?: unknown }
      if (entry.msg === 'listening' && typeof entry.port === 'number') return entry.port
    } catch {
      // A partly written line: read it again on the next poll.
    }
  }
  return undefined
}

/** True while a process with this PID exists (a zombie counts until its parent reaps it). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * How long a server may take to say it listens: only a hang should fail this. The relay
 * starts from TypeScript source, which took over 30 s on a loaded 2-core machine.
 */
const START_TIMEOUT_MS = 120_000

/**
 * Starts a server and resolves once it logged that it listens; rejects with the log's
 * tail if it exits first or stays silent for `timeoutMs`.
 */
export async function startServer(spec: ServerSpec): Promise<StartedServer> {
  const from = existsSync(spec.logFile) ? readFileSync(spec.logFile).length : 0
  const fd = openSync(spec.logFile, 'a')
  const child = spawn(spec.command ?? process.execPath, [...spec.args], {
    cwd: spec.cwd,
    env: spec.env ?? process.env,
    detached: true,
    stdio: ['ignore', fd, fd],
  })
  closeSync(fd)
  let exited: string | undefined
  child.on('exit', (code, signal) => {
    exited = signal ?? `code ${String(code)}`
  })
  child.unref()
  const pid = child.pid
  if (pid === undefined) throw new Error(`${spec.name}: could not start (${spec.command ?? 'node'} ${spec.args.join(' ')})`)
  const deadline = Date.now() + (spec.timeoutMs ?? START_TIMEOUT_MS)
  while (Date.now() < deadline) {
    const port = listeningPort(spec.logFile, from)
    if (port !== undefined) return { pid, port }
    if (exited !== undefined) {
      throw new Error(`${spec.name} exited (${exited}) before listening; log ${spec.logFile}:\n${logTail(spec.logFile)}`)
    }
    await sleep(50)
  }
  stopProcess(pid, 'SIGKILL')
  throw new Error(`${spec.name} did not report "listening" within ${spec.timeoutMs ?? START_TIMEOUT_MS} ms; log ${spec.logFile}:\n${logTail(spec.logFile)}`)
}

/** Sends `signal` to exactly this PID; a process that is already gone is fine. */
export function stopProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
  }
}

/**
 * Sends `signal` to the process group that {@link startServer} made for `pid` (the
 * server and anything it started, e.g. `npx` and the relay it runs); a group that is
 * already gone is fine.
 */
export function stopGroup(pid: number, signal: NodeJS.Signals): void {
  stopProcess(-pid, signal)
}

/** Sends SIGTERM, waits up to `graceMs` for the process to go, then SIGKILLs it. */
export async function stopGracefully(pid: number, graceMs = 5_000): Promise<void> {
  stopProcess(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline && isAlive(pid)) await sleep(50)
  if (isAlive(pid)) stopProcess(pid, 'SIGKILL')
}

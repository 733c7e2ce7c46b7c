/**
 * The relay as a child process, started the way it runs in production
 * (`bin/outpost-server.js`), with its JSON log lines kept so a test can tell a clean start
 * from a troubled one.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { RELAY_NODE_ARGS } from './relay-command'


/** One JSON log line of the relay. */
export interface RelayLogLine {
  readonly level?: number
  readonly msg?: string
  readonly port?: number
  readonly [field: string]: unknown
}

/** A running relay child process. */
export interface RelayProcess {
  readonly child: ChildProcess
  readonly port: number
  /** `ws://127.0.0.1:port`. */
  readonly url: string
  /** `http://127.0.0.1:port`. */
  readonly httpUrl: string
  /** Milliseconds from spawn to the `listening` line. */
  readonly startMs: number
  /** Every JSON log line so far. */
  logs(): RelayLogLine[]
  /** Log lines at level error (50) or worse. */
  problems(): RelayLogLine[]
  /** Everything written to stderr so far. */
  stderr(): string
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Options of {@link spawnRelay}. */
export interface SpawnRelayOptions {
  /** Extra flags after `--port 0 --host 127.0.0.1 --data-dir <dir>`. */
  readonly args?: readonly string[]
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>
  /** How long the start may take (ms). */
  readonly timeoutMs?: number
}

/** Starts `outpost-server` on 127.0.0.1, port 0, over `dataDir`; resolves once it logs `listening`. */
export async function spawnRelay(dataDir: string, options: SpawnRelayOptions = {}): Promise<RelayProcess> {
  const started = Date.now()
  const child = spawn(process.execPath, [...RELAY_NODE_ARGS, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...(options.args ?? [])], {
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: RelayLogLine[] = []
  let partial = ''
  let errText = ''
  let wake: (() => void) | undefined
  child.stdout?.on('data', (chunk: Buffer) => {
    partial += chunk.toString()
    const parts = partial.split('\n')
    partial = parts.pop() ?? ''
    for (const line of parts) {
      if (!line.startsWith('{')) continue
      try {
        lines.push(JSON.parse(line) as RelayLogLine)
      } catch {
        lines.push({ level: 60, msg: `unparsable log line: ${line.slice(0, 200)}` })
      }
    }
    wake?.()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    errText += chunk.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      wake?.()
      resolve({ code, signal })
    })
  })
  const deadline = started + (options.timeoutMs ?? 60_000)
  for (;;) {
    const listening = lines.find((line) => line.msg === 'listening' && typeof line.port === 'number')
    if (listening !== undefined) {
      const port = listening.port as number
      return {
        child,
        port,
        url: `ws://127.0.0.1:${port}`,
        httpUrl: `http://127.0.0.1:${port}`,
        startMs: Date.now() - started,
        logs: () => [...lines],
        problems: () => lines.filter((line) => (line.level ?? 0) >= 50),
        stderr: () => errText,
        exited,
      }
    }
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`relay exited before listening (${child.exitCode ?? child.signalCode}): ${errText.slice(0, 2000)}`)
    const left = deadline - Date.now()
    if (left <= 0) {
      child.kill('SIGKILL')
      throw new Error(`relay did not log "listening" within ${options.timeoutMs ?? 60_000} ms: ${errText.slice(0, 2000)}`)
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(left, 200))
      wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }
}

/** Reads `/metrics` and returns the value of each unlabelled sample named in `names`. */
export async function readMetrics(httpUrl: string, names: readonly string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const [name, value] = line.split(' ')
    if (name !== undefined && value !== undefined && names.includes(name)) out[name] = Number(value)
  }
  return out
}

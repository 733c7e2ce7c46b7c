/**
 * A relay as a child process (its TypeScript source run by Node with tsx), so a test can
 * kill it with SIGKILL — the way a relay host really dies: no drain, no goodbye frame, the
 * kernel closes its sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The relay CLI's TypeScript entry (spawned as a file, never imported). */
const RELAY_CLI_SOURCE = fileURLToPath(new URL('../../server-lite/src/cli.ts', import.meta.url))
/** Runs a workspace package's source: its `@outpost/source` export condition and tsx. */
const NODE_SOURCE_FLAGS = ['--conditions=@outpost/source', '--import', 'tsx']

/** A running relay child process. */
export interface RelayChild {
  readonly child: ChildProcess
  /** `ws://127.0.0.1:port`. */
  readonly url: string
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>
  /** SIGKILL (no drain), then waits for the exit. */
  kill(): Promise<void>
}

/** Starts the relay CLI on 127.0.0.1, port 0, with extra flags; resolves once it logs `listening`. */
export async function spawnRelay(args: readonly string[], timeoutMs = 60_000): Promise<RelayChild> {
  const child = spawn(process.execPath, [...NODE_SOURCE_FLAGS, RELAY_CLI_SOURCE, '--port', '0', '--host', '127.0.0.1', ...args], {
    env: { ...process.env, OUTPOST_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    let partial = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`relay did not log "listening" within ${timeoutMs} ms: ${stderr.slice(0, 2000)}`))
    }, timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`relay exited before listening (${code ?? signal}): ${stderr.slice(0, 2000)}`))
    })
    child.stdout?.on('data', (chunk: Buffer) => {
      partial += chunk.toString()
      const lines = partial.split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) {
        if (!line.startsWith('{')) continue
        const parsed = JSON.parse(line) as { msg?: string; port?: number }
        if (parsed.msg === 'listening' && typeof parsed.port === 'number') {
          clearTimeout(timer)
          resolve(parsed.port)
        }
      }
    })
  })
  return {
    child,
    url: `ws://127.0.0.1:${port}`,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

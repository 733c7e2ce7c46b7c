/**
 * `npm start` (scripts/start.mjs) as a newcomer runs it: when the relay dies, the script
 * restarts it on the same port with a logged, growing backoff, and the demo keeps being
 * served; Ctrl-C still stops everything with exit code 0. Serves the suite's demo build
 * (OUTPOST_DEMO_DIST) so it does not rebuild the demo.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import { stopProcess } from './support/processes'
import { DEMO_DIST, REPO_ROOT } from './support/stack'

interface StartScript {
  readonly child: ChildProcess
  output(): string
  readonly exit: Promise<number | null>
}

function runStart(dataDir: string): StartScript {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'scripts', 'start.mjs')], {
    cwd: REPO_ROOT,
    env: { ...process.env, OUTPOST_PORT: '0', DEMO_PORT: '0', OUTPOST_DATA_DIR: dataDir, OUTPOST_DEMO_DIST: DEMO_DIST },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let text = ''
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()))
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, output: () => text, exit }
}

/** PIDs of every relay the script started, in order. */
function relayPids(output: string): number[] {
  return [...output.matchAll(/\[start\] relay started \(pid (\d+)\)/g)].map((m) => Number(m[1]))
}

async function answers(url: string): Promise<boolean> {
  return fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
    (response) => response.ok,
    () => false,
  )
}

test('npm start restarts a relay that dies, with a logged backoff, and keeps the demo up', async () => {
  const work = mkdtempSync(join(tmpdir(), 'outpost-start-'))
  const script = runStart(join(work, 'data'))
  try {
    await expect.poll(() => /Outpost is running\.\s+Relay: ws:\/\/127\.0\.0\.1:(\d+)/.exec(script.output()) !== null, { timeout: 60_000 }).toBe(true)
    const relayPort = Number(/Relay: ws:\/\/127\.0\.0\.1:(\d+)/.exec(script.output())?.[1])
    const demoUrl = /Open (http:\/\/127\.0\.0\.1:\d+)/.exec(script.output())?.[1] as string
    expect(await answers(`http://127.0.0.1:${relayPort}/healthz`)).toBe(true)

    for (const restart of [1, 2]) {
      const pid = relayPids(script.output()).at(-1) as number
      stopProcess(pid, 'SIGKILL')
      await expect.poll(() => script.output().includes(`relay is back on ws://127.0.0.1:${relayPort} (restart ${restart})`), { timeout: 30_000 }).toBe(true)
      expect(script.child.exitCode).toBeNull()
      expect(await answers(`http://127.0.0.1:${relayPort}/healthz`)).toBe(true)
      expect(await answers(demoUrl)).toBe(true)
    }
    // Each restart in a row waits twice as long as the one before.
    const delays = [...script.output().matchAll(/restarting it in ([\d.]+) s \(restart (\d)\)/g)].map((m) => Number(m[1]))
    expect(delays).toEqual([1, 2])
    expect(script.output()).not.toMatch(/Lifecycle script|stopping/)

    script.child.kill('SIGINT')
    expect(await script.exit).toBe(0)
  } finally {
    if (script.child.exitCode === null) {
      // A failed run: Ctrl-C it like a person would; if that does not work, kill it and the relay it runs.
      script.child.kill('SIGINT')
      const stopped = await Promise.race([script.exit.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000))])
      if (!stopped) {
        script.child.kill('SIGKILL')
        const last = relayPids(script.output()).at(-1)
        if (last !== undefined) stopProcess(last, 'SIGKILL')
      }
    }
    rmSync(work, { recursive: true, force: true })
  }
})

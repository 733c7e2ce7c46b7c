/**
 * Browser plumbing for the D2 and B1 specs: the harness page (support-b/harness, built with
 * Vite into e2e/.cache/rel-harness when its sources changed, served by the suite's static
 * server), and Debian's Chromium started as our own child process on a persistent profile,
 * reached over CDP, so a spec can SIGKILL it like a power cut and reopen the same profile.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium, type Browser, type BrowserContext } from '@playwright/test'
import { build } from 'vite'
import { sourceResolution } from '../../../scripts/source-conditions'
import { CHROMIUM_PATH } from '../../support/chromium'
import { startServer, type StartedServer } from '../../support/processes'
import { E2E_DIR, REPO_ROOT } from '../../support/stack'

const HARNESS_DIR = join(E2E_DIR, 'reliability', 'support-b', 'harness')
/** Where the harness is built. */
export const HARNESS_DIST = join(E2E_DIR, '.cache', 'rel-harness')
const STAMP = join(HARNESS_DIST, '.build.json')

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  let newest = 0
  for (const entry of readdirSync(path)) {
    if (entry === 'node_modules' || entry === 'dist' || entry === 'test' || entry.startsWith('.')) continue
    newest = Math.max(newest, newestMtime(join(path, entry)))
  }
  return newest
}

/** Builds the harness unless a build newer than it and the SDK's sources exists. */
export async function buildHarnessIfNeeded(): Promise<void> {
  const sources = [HARNESS_DIR, ...['core', 'worker', 'client'].map((pkg) => join(REPO_ROOT, 'packages', pkg, 'src'))]
  const newest = Math.max(...sources.map(newestMtime))
  if (existsSync(STAMP) && existsSync(join(HARNESS_DIST, 'index.html'))) {
    const stamp = JSON.parse(readFileSync(STAMP, 'utf8')) as { builtAt?: unknown }
    if (typeof stamp.builtAt === 'number' && stamp.builtAt >= newest) return
  }
  const started = Date.now()
  // Bundled like the demo (the SDK from source, ES workers, relative URLs), without React or a service worker.
  await build({
    ...sourceResolution,
    root: HARNESS_DIR,
    base: './',
    configFile: false,
    logLevel: 'warn',
    worker: { format: 'es' },
    build: { outDir: HARNESS_DIST, emptyOutDir: true, target: 'es2022', rolldownOptions: { checks: { bundlerTimings: false } } },
  })
  writeFileSync(STAMP, JSON.stringify({ builtAt: started }))
}

/** Serves the built harness on a free 127.0.0.1 port. */
export function startHarnessServer(logFile: string): Promise<StartedServer> {
  return startServer({ name: 'harness', args: ['--import', 'tsx', join(E2E_DIR, 'support', 'static-server.ts'), HARNESS_DIST, '0'], cwd: REPO_ROOT, logFile })
}

/** A Chromium we started on a profile, connected over CDP. */
export interface OwnedChromium {
  readonly pid: number
  readonly browser: Browser
  /** The profile's default context: its storage is the profile's. */
  readonly context: BrowserContext
  /** SIGKILLs the browser and every process it started (its process group), and waits until they are gone. */
  kill(): Promise<void>
}

/** Starts Chromium headless on `profileDir` (kept across launches) and connects to it. */
export async function launchChromium(profileDir: string): Promise<OwnedChromium> {
  const portFile = join(profileDir, 'DevToolsActivePort')
  if (existsSync(portFile)) writeFileSync(portFile, '')
  const child = spawn(
    CHROMIUM_PATH,
    ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profileDir}`, '--remote-debugging-port=0', 'about:blank'],
    // Its own process group, so one kill reaches the renderers and the storage service too.
    { detached: true, stdio: 'ignore' },
  )
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${CHROMIUM_PATH}`)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const killGroup = async (): Promise<void> => {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
    await Promise.race([exited, sleep(10_000)])
    // Children re-parented elsewhere are in the group too: wait for the group to empty.
    const deadline = Date.now() + 10_000
    while (groupAlive(pid) && Date.now() < deadline) await sleep(50)
  }
  try {
    const deadline = Date.now() + 30_000
    let port = 0
    while (port === 0) {
      if (child.exitCode !== null) throw new Error(`chromium exited with ${child.exitCode} before listening for CDP`)
      if (Date.now() > deadline) throw new Error('chromium did not write DevToolsActivePort within 30 s')
      const text = existsSync(portFile) ? readFileSync(portFile, 'utf8') : ''
      port = Number(text.split('\n')[0] ?? '') || 0
      if (port === 0) await sleep(50)
    }
    const browser = await chromium.connectOverCDP(`http://127.0.0.1:${port}`)
    const context = browser.contexts()[0]
    if (context === undefined) throw new Error('the CDP browser has no default context')
    return { pid, browser, context, kill: killGroup }
  } catch (error) {
    await killGroup()
    throw error
  }
}

/** True while any process of group `pgid` exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

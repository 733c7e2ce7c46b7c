/**
 * The suite's `test`: Playwright's, plus an `outpost` fixture that knows where the relay
 * and the demo run, opens "devices" (browser contexts, closed after the test), reads the
 * relay's metrics, restarts the relay, and saves each scenario's screenshot.
 */
import { test as base, expect, type Browser, type BrowserContext, type Page, type TestInfo } from '@playwright/test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { NetworkLink } from './network-link'
import { logTail, stopProcess } from './processes'
import { RESULTS_DIR, readState, startRelay, writeState } from './stack'

/** What a board URL selects (see demo-app/src/config.ts). */
export interface BoardOptions {
  /** The local database: tabs with the same name on one device share one engine. */
  readonly db: string
  /** The person using the device (`?me=`). */
  readonly me?: string
  /** `all` replicates every task, `mine` only the shape of tasks assigned to `me`. */
  readonly view?: 'all' | 'mine'
}

/**
 * One simulated device: a browser context of its own (own IndexedDB, workers, service
 * worker) that reaches the relay through its own {@link NetworkLink}.
 */
export interface Device {
  readonly context: BrowserContext
  readonly link: NetworkLink
  /** Opens the board in a new tab of this device and waits until it shows its tasks. */
  open(options: BoardOptions): Promise<Page>
  /** The board's URL for this device. */
  url(options: BoardOptions): string
  /**
   * Takes the whole device off the network (true) or back on (false): page loads fail
   * (the service worker answers) and the engine's relay socket drops.
   */
  setOffline(offline: boolean): Promise<void>
}

/** The `outpost` fixture. */
export interface Outpost {
  /** The demo's origin, e.g. `http://127.0.0.1:41234`. */
  readonly webUrl: string
  /** The relay's WebSocket URL. */
  readonly relayUrl: string
  /** A new device (browser context); closed when the test ends. */
  newDevice(): Promise<Device>
  /** The value of a Prometheus metric without labels (e.g. `outpost_connections`). */
  metric(name: string): Promise<number>
  /** SIGKILLs the relay (no drain: as if the machine lost power). */
  killRelay(): Promise<void>
  /** Starts the relay again on the same port and data dir. */
  startRelay(): Promise<void>
  /** Saves the scenario's screenshot as `test-results/<scenario>.png`. */
  screenshot(page: Page, scenario: string): Promise<void>
  /** A name unique within this run, for databases, people and task titles. */
  unique(prefix: string): string
}

let counter = 0

function relayHttp(): string {
  return `http://127.0.0.1:${readState().relay.port}`
}

async function readMetric(name: string): Promise<number> {
  const response = await fetch(`${relayHttp()}/metrics`)
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`)
  const text = await response.text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  if (line === undefined) throw new Error(`/metrics has no unlabelled ${name}; it has:\n${text.slice(0, 2000)}`)
  return Number(line.slice(name.length + 1))
}

/** True while the relay answers /healthz. */
async function relayAnswers(): Promise<boolean> {
  return fetch(`${relayHttp()}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
    (response) => response.ok,
    () => false,
  )
}

async function killRelay(): Promise<void> {
  stopProcess(readState().relay.pid, 'SIGKILL')
  // The kernel closes its sockets as the process dies; wait until the port stops answering.
  const deadline = Date.now() + 10_000
  while (await relayAnswers()) {
    if (Date.now() > deadline) throw new Error(`relay pid ${readState().relay.pid} still answers 10 s after SIGKILL`)
    await sleep(50)
  }
}

async function restartRelay(): Promise<void> {
  const state = readState()
  const started = await startRelay({ port: state.relay.port, dataDir: state.relay.dataDir, logFile: state.relay.logFile })
  writeState({ ...state, relay: { ...state.relay, pid: started.pid } })
}

function boardUrl(options: BoardOptions, relayPort: number): string {
  const state = readState()
  const params = new URLSearchParams({ relay: `ws://127.0.0.1:${relayPort}`, db: options.db })
  if (options.me !== undefined) params.set('me', options.me)
  if (options.view !== undefined) params.set('view', options.view)
  return `http://127.0.0.1:${state.web.port}/?${params.toString()}`
}

/**
 * How long a device's first board may take to show its tasks: only a hang should fail
 * this. A new device starts its SharedWorker and opens IndexedDB cold, which took over
 * 15 s (the default expect timeout) on a loaded 2-core machine.
 */
const FIRST_OPEN_TIMEOUT_MS = 60_000

/** Opens the board and waits for the first live-query result (the list or the empty state). */
async function openBoard(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage()
  await page.goto(url)
  await expect(page.getByTestId('task-list').or(page.getByTestId('empty-state'))).toBeVisible({ timeout: FIRST_OPEN_TIMEOUT_MS })
  return page
}

async function newDevice(browser: Browser, cleanup: (() => Promise<void>)[], testInfo: TestInfo): Promise<Device> {
  const link = await NetworkLink.open(() => readState().relay.port)
  cleanup.push(() => link.close())
  const context = await browser.newContext()
  cleanup.push(() => context.close())
  // Chromium prints engine errors to the console; keep them with the test's output.
  context.on('console', (message) => {
    if (message.type() === 'error') console.log(`[browser ${testInfo.title}] ${message.text()}`)
  })
  const url = (options: BoardOptions): string => boardUrl(options, link.port)
  return {
    context,
    link,
    url,
    open: (options) => openBoard(context, url(options)),
    async setOffline(offline) {
      await context.setOffline(offline)
      if (offline) link.cut()
      else link.restore()
    },
  }
}

/** Playwright's `test` with the {@link Outpost} fixture. */
export const test = base.extend<{ outpost: Outpost }>({
  outpost: async ({ browser }, use, testInfo) => {
    const cleanup: (() => Promise<void>)[] = []
    const state = readState()
    await use({
      webUrl: `http://127.0.0.1:${state.web.port}`,
      get relayUrl() {
        return `ws://127.0.0.1:${readState().relay.port}`
      },
      newDevice: () => newDevice(browser, cleanup, testInfo),
      metric: readMetric,
      killRelay,
      startRelay: restartRelay,
      async screenshot(page, scenario) {
        mkdirSync(RESULTS_DIR, { recursive: true })
        await page.screenshot({ path: join(RESULTS_DIR, `${scenario}.png`), fullPage: true })
      },
      unique(prefix) {
        counter++
        // The relay outlives a worker that restarts after a failure: the pid keeps names apart.
        return `${prefix} ${process.pid.toString(36)}${counter}`
      },
    })
    if (testInfo.status !== testInfo.expectedStatus) {
      // What the relay saw is half the story of a failed scenario.
      await testInfo.attach('relay.log (tail)', { body: logTail(readState().relay.logFile, 80), contentType: 'text/plain' })
    }
    // Contexts first (their sockets close cleanly), then their links.
    for (const step of cleanup.reverse()) await step()
    // A spec that killed the relay and failed before restarting it must not break the next ones.
    if (!(await relayAnswers())) await restartRelay()
  },
})

export { expect }

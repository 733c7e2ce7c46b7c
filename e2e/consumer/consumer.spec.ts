/**
 * Outpost the way a consumer gets it. `npm pack` every package (each builds its dist/ in
 * `prepack`), then, in a temp dir outside the workspace, make a fresh Vite + React app that
 * installs only those tarballs (plus react, react-dom, vite, @vitejs/plugin-react and
 * TypeScript from the registry), type-check it against the shipped .d.ts files, build it
 * with a stock Vite config (no optimizeDeps line), and start the packed relay with
 * `npx outpost-server`. In Chromium: two tabs share one SharedWorker, a write shows in the
 * other tab's `useQuery` and in a plain live query, reaches a second device through the
 * relay, survives offline → online, the dedicated-worker entry runs leader-tab mode, and a
 * bad predicate reaches the subscriber's error callback with its class name intact after
 * minification.
 *
 * Prints the tarball sizes and how long each phase took.
 */
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test, type Browser, type BrowserContext, type Page } from '@playwright/test'
import { NetworkLink } from '../support/network-link'
import { startServer, stopGroup, stopGracefully, type StartedServer } from '../support/processes'
import { E2E_DIR, REPO_ROOT } from '../support/stack'

const PACKAGES = ['core', 'worker', 'client', 'server-lite'] as const
const APP_TEMPLATE = join(E2E_DIR, 'consumer', 'app')
const STATIC_SERVER = join(E2E_DIR, 'support', 'static-server.ts')

interface Packed {
  readonly name: string
  readonly filename: string
  readonly size: number
  readonly unpackedSize: number
  readonly entryCount: number
}

let work: string
let app: string
let relay: StartedServer | undefined
let web: StartedServer | undefined
const phases: [string, number][] = []

/** Runs a command to completion in `cwd`; throws with its output when it fails. */
function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const result = spawnSync(command, [...args], { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd} (exit ${String(result.status)}):\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

/** Times one phase of the setup (printed at the end). */
function phase<T>(name: string, fn: () => T): T {
  const started = Date.now()
  const value = fn()
  phases.push([name, Date.now() - started])
  return value
}

/** The version range the repository itself uses for a registry package. */
function repoRange(manifest: string, name: string): string {
  const json = JSON.parse(readFileSync(join(REPO_ROOT, manifest), 'utf8')) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> }
  const range = json.dependencies?.[name] ?? json.devDependencies?.[name]
  if (range === undefined) throw new Error(`${manifest} does not list ${name}`)
  return range
}

test.describe.configure({ mode: 'serial' })

test.beforeAll(async () => {
  test.setTimeout(600_000)
  work = mkdtempSync(join(tmpdir(), 'outpost-consumer-'))
  const tarballs = join(work, 'tarballs')
  mkdirSync(tarballs)

  // 1. Pack (prepack builds each package's dist/ first).
  const packed = phase('npm pack (builds dist/)', () =>
    JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs, ...PACKAGES.flatMap((p) => ['-w', `packages/${p}`])], REPO_ROOT)) as Packed[],
  )
  expect(packed.map((p) => p.name).sort()).toEqual(['@outpost/client', '@outpost/core', '@outpost/server-lite', '@outpost/worker'])
  for (const p of packed) console.log(`[consumer] ${p.filename}: ${(p.size / 1024).toFixed(1)} KiB packed, ${(p.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${p.entryCount} files`)

  // 2. A fresh app outside the workspace that depends on the tarballs only.
  app = join(work, 'app')
  cpSync(APP_TEMPLATE, app, { recursive: true })
  const tarball = (name: string): string => `file:${join(tarballs, (packed.find((p) => p.name === name) as Packed).filename)}`
  const outpost = Object.fromEntries(packed.map((p) => [p.name, tarball(p.name)]))
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify(
      {
        name: 'outpost-consumer-app',
        private: true,
        type: 'module',
        dependencies: {
          ...outpost,
          react: repoRange('demo-app/package.json', 'react'),
          'react-dom': repoRange('demo-app/package.json', 'react-dom'),
        },
        devDependencies: {
          vite: repoRange('package.json', 'vite'),
          '@vitejs/plugin-react': repoRange('demo-app/package.json', '@vitejs/plugin-react'),
          typescript: repoRange('package.json', 'typescript'),
          '@types/react': repoRange('demo-app/package.json', '@types/react'),
          '@types/react-dom': repoRange('demo-app/package.json', '@types/react-dom'),
        },
        // The packages depend on each other by version: these must be the tarballs, never a registry lookup.
        overrides: Object.fromEntries(packed.map((p) => [p.name, `$${p.name}`])),
      },
      null,
      2,
    ),
  )
  phase('npm install (tarballs + registry)', () => run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'error'], app))
  // Nothing may resolve into the workspace: every @outpost package is the installed tarball.
  for (const p of PACKAGES) {
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules', '@outpost', p, 'package.json'), 'utf8')) as { version: string }
    expect(manifest.version).toBe('0.1.0')
  }
  phase('tsc against the shipped .d.ts', () => run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app))
  phase('vite build', () => run(process.execPath, [join(app, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], app))

  // 3. The packed relay, as a consumer starts it.
  expect(run('npx', ['outpost-server', '--version'], app).trim()).toBe('outpost-server 0.1.0')
  const started = Date.now()
  relay = await startServer({
    name: 'packed relay',
    command: 'npx',
    args: ['outpost-server', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(work, 'relay-data')],
    cwd: app,
    logFile: join(work, 'relay.log'),
  })
  phases.push(['npx outpost-server → listening', Date.now() - started])
  web = await startServer({ name: 'web', args: ['--import', 'tsx', STATIC_SERVER, join(app, 'dist'), '0'], cwd: REPO_ROOT, logFile: join(work, 'web.log') })
})

test.afterAll(async () => {
  for (const [name, ms] of phases) console.log(`[consumer] ${name}: ${(ms / 1000).toFixed(1)} s`)
  if (relay !== undefined) {
    // npx started the relay as its child: stop the whole group, gracefully first.
    stopGroup(relay.pid, 'SIGTERM')
    await stopGracefully(relay.pid)
    stopGroup(relay.pid, 'SIGKILL')
  }
  if (web !== undefined) await stopGracefully(web.pid)
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

/** One device: a browser context reaching the relay through its own cuttable link. */
async function device(browser: Browser, options: { sharedWorker?: boolean } = {}): Promise<{ context: BrowserContext; link: NetworkLink; open: (db: string) => Promise<Page> }> {
  const link = await NetworkLink.open(() => (relay as StartedServer).port)
  const context = await browser.newContext()
  if (options.sharedWorker === false) {
    await context.addInitScript(() => {
      delete (globalThis as { SharedWorker?: unknown }).SharedWorker
    })
  }
  context.on('console', (message) => {
    if (message.type() === 'error') console.log(`[consumer browser] ${message.text()}`)
  })
  const open = async (db: string): Promise<Page> => {
    const page = await context.newPage()
    page.on('pageerror', (error) => console.log(`[consumer page error] ${error.message}`))
    await page.goto(`http://127.0.0.1:${(web as StartedServer).port}/?relay=ws://127.0.0.1:${link.port}&db=${db}`)
    await expect(page.getByTestId('connection')).toHaveText('live', { timeout: 30_000 })
    return page
  }
  return { context, link, open }
}

async function addNote(page: Page, text: string): Promise<void> {
  await page.getByTestId('text').fill(text)
  await page.getByTestId('add').click()
}

function notes(page: Page) {
  return page.getByTestId('note')
}

test('a fresh Vite + React app on the packed tarballs syncs through the packed relay', async ({ browser }) => {
  const started = Date.now()
  const laptop = await device(browser)
  const phone = await device(browser)
  const oldBrowser = await device(browser, { sharedWorker: false })
  try {
    // Two tabs of one device share one SharedWorker (the package's worker entry, bundled by the app's Vite build).
    const a1 = await laptop.open('laptop')
    const a2 = await laptop.open('laptop')
    await expect(a1.getByTestId('mode')).toHaveText('shared-worker')
    await expect(a2.getByTestId('mode')).toHaveText('shared-worker')
    const b = await phone.open('phone')

    // A write shows in the other tab (useQuery and a plain live query) and on the other device.
    await addNote(a1, 'alpha')
    await expect(notes(a2)).toHaveText(['alpha'])
    await expect(a2.getByTestId('count')).toHaveText('1')
    await expect(notes(b)).toHaveText(['alpha'])

    // Offline → online: the write is local at once, reaches the relay when the network returns.
    await laptop.context.setOffline(true)
    laptop.link.cut()
    await expect(a1.getByTestId('connection')).not.toHaveText('live', { timeout: 30_000 })
    await addNote(a2, 'bravo (offline)')
    await expect(notes(a1)).toHaveText(['alpha', 'bravo (offline)'])
    await expect(a1.getByTestId('pending')).not.toHaveText('0')
    await expect(notes(b)).toHaveText(['alpha'])
    await laptop.context.setOffline(false)
    laptop.link.restore()
    await expect(a1.getByTestId('connection')).toHaveText('live', { timeout: 30_000 })
    await expect(a1.getByTestId('pending')).toHaveText('0')
    await expect(notes(b)).toHaveText(['alpha', 'bravo (offline)'])

    // Without SharedWorker the package's dedicated-worker entry runs the engine for a leader tab.
    const c = await oldBrowser.open('old-browser')
    await expect(c.getByTestId('mode')).toHaveText('leader-tab')
    await expect(notes(c)).toHaveText(['alpha', 'bravo (offline)'])

    // A bad predicate reaches the error callback, with its class name intact in a minified build.
    await expect(a1.getByTestId('bad-query')).toHaveText('PredicateError INVALID_PREDICATE')
    console.log(`[consumer] browser checks: ${((Date.now() - started) / 1000).toFixed(1)} s`)
  } finally {
    for (const d of [laptop, phone, oldBrowser]) {
      await d.context.close()
      await d.link.close()
    }
  }
})

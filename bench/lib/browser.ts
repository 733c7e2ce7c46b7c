/**
 * The browser side of the harness: bundles the pages with Vite, serves them from
 * 127.0.0.1, and launches Debian's Chromium headless through playwright-core (nothing
 * downloads a browser). Each context is a persistent profile on disk, so IndexedDB runs
 * on disk as it does for users (an incognito context keeps it in memory).
 */
import { createServer, type Server } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { extname, join, normalize } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { build } from 'vite'
import { sourceResolution } from '../../scripts/source-conditions'

/** Where Debian installs Chromium; override with OUTPOST_CHROMIUM. */
export const CHROMIUM_PATH = process.env.OUTPOST_CHROMIUM ?? '/usr/bin/chromium'

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Timers of hidden/background pages must not be throttled while a workload waits on them.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
]

/** The page names the build produces (`<name>.html`). */
export const PAGE_NAMES = ['raw', 'outpost', 'tinybase', 'yjs', 'automerge'] as const
/** One benchmark page. */
export type PageName = (typeof PAGE_NAMES)[number]

/** Bundles `bench/pages` into `outDir` (production build, as an app would ship it; `minify: false` keeps function names for CPU profiles). */
export async function buildPages(pagesDir: string, outDir: string, options: { minify?: boolean } = {}): Promise<void> {
  const input: Record<string, string> = {}
  for (const name of PAGE_NAMES) input[name] = join(pagesDir, `${name}.html`)
  await build({
    root: pagesDir,
    logLevel: 'error',
    configFile: false,
    ...sourceResolution,
    build: { outDir, emptyOutDir: true, target: 'es2022', minify: options.minify ?? true, rollupOptions: { input }, reportCompressedSize: false, chunkSizeWarningLimit: 10_000 },
    worker: { format: 'es' },
  })
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.json': 'application/json',
}

/**
 * Headers that make every bench page (and its workers) cross-origin isolated. Without
 * them Chromium coarsens `performance.now()` to 100 µs, which is coarser than the
 * sub-millisecond latencies workload 2 compares (it read 0.1 vs 0.3 ms); isolated, it is
 * 5 µs. Same for every system: all pages are served from here and reach their servers
 * by WebSocket, which these headers do not restrict.
 */
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } as const

/** Serves `dir` on 127.0.0.1 (a free port). */
export async function serveStatic(dir: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')).replace(/^(\.\.[/\\])+/, '')
    const file = join(dir, path === '/' ? 'index.html' : path)
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end()
      return
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store', ...ISOLATION }).end(body),
      () => res.writeHead(500).end(),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('static server: no TCP address')
  return {
    origin: `http://127.0.0.1:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** A browser profile (one simulated device) and its cleanup. */
export interface Device {
  readonly context: BrowserContext
  /** The profile directory (Chromium's `--user-data-dir`), which names its processes. */
  readonly profile: string
  /** The origin its pages are served from. */
  readonly origin: string
  /** Opens `<origin>/<name>.html` in a new tab and waits for its script. */
  open(name: PageName): Promise<Page>
  close(): Promise<void>
}

/** Launches Chromium with a fresh on-disk profile. */
export async function launchDevice(origin: string): Promise<Device> {
  const profile = await mkdtemp(join(tmpdir(), 'outpost-bench-'))
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS })
  return {
    context,
    profile,
    origin,
    async open(name) {
      const page = await context.newPage()
      page.on('pageerror', (error) => console.error(`[${name} page] ${error.message}`))
      await page.goto(`${origin}/${name}.html`)
      await page.waitForFunction(name === 'raw' ? 'globalThis.raw !== undefined' : 'globalThis.bench !== undefined')
      return page
    },
    async close() {
      await context.close()
      await rm(profile, { recursive: true, force: true })
    },
  }
}

/** Chromium's version string (e.g. "Chromium 124.0..."). */
export async function chromiumVersion(): Promise<string> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS })
  try {
    return browser.version()
  } finally {
    await browser.close()
  }
}

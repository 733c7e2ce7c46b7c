/**
 * The system under test: the real relay (server-lite's CLI, LMDB in a fresh temp dir)
 * and the built demo behind a static server, both on free 127.0.0.1 ports.
 *
 * The global setup starts them and writes a {@link StackState} file whose path it puts in
 * `OUTPOST_E2E_STATE`; test workers read it, and the relay fixture rewrites it when a spec
 * restarts the relay, so the teardown always stops the PIDs that are actually running.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NODE_SOURCE_FLAGS } from '../../scripts/source-conditions'
import { startServer, type StartedServer } from './processes'

/** The repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The e2e workspace. */
export const E2E_DIR = join(REPO_ROOT, 'e2e')
/**
 * The demo build the suite serves: its own build (so `npm start`'s is left alone), or
 * an existing one named by `OUTPOST_E2E_DEMO_DIST`, which is served as is.
 */
export const DEMO_DIST = process.env['OUTPOST_E2E_DEMO_DIST'] === undefined ? join(E2E_DIR, '.cache', 'demo-dist') : resolve(process.env['OUTPOST_E2E_DEMO_DIST'])
/** Screenshots, traces and copied logs. */
export const RESULTS_DIR = join(E2E_DIR, 'test-results')
/** The env var naming the state file. */
export const STATE_ENV = 'OUTPOST_E2E_STATE'

const DEMO_DIR = join(REPO_ROOT, 'demo-app')
// The relay runs from its TypeScript source (as in every workspace test); the packed, built
// relay is what e2e/consumer tests.
const RELAY_CLI = join(REPO_ROOT, 'packages', 'server-lite', 'src', 'cli.ts')
const STATIC_SERVER = join(E2E_DIR, 'support', 'static-server.ts')
// The relay's rules (see relay-config.ts): open, except one refusal a spec can provoke.
const RELAY_CONFIG = join(E2E_DIR, 'support', 'relay-config.ts')
// The demo's map schemas (the app's own module): the suite's relay enforces them like `npm start`'s.
export const DEMO_SCHEMA = join(DEMO_DIR, 'src', 'schema.ts')
const BUILD_STAMP = join(DEMO_DIST, '.e2e-build.json')

/** What the global setup started. */
export interface StackState {
  /** Temp dir holding the relay's data dir and the logs. */
  readonly workDir: string
  readonly relay: { pid: number; port: number; dataDir: string; logFile: string }
  readonly web: { pid: number; port: number; logFile: string }
}

/** Reads the state file named by `OUTPOST_E2E_STATE`. */
export function readState(): StackState {
  const file = process.env[STATE_ENV]
  if (file === undefined || !existsSync(file)) {
    throw new Error(`${STATE_ENV} is not set or missing: run the specs through playwright.config.ts, whose global setup starts the relay and the demo`)
  }
  return JSON.parse(readFileSync(file, 'utf8')) as StackState
}

/** Rewrites the state file (after a relay restart). */
export function writeState(state: StackState): void {
  const file = process.env[STATE_ENV]
  if (file === undefined) throw new Error(`${STATE_ENV} is not set`)
  writeFileSync(file, JSON.stringify(state, null, 2))
}

/** Newest modification time under `path`, skipping dependencies, build output and tests. */
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

/**
 * Builds the demo into {@link DEMO_DIST} unless a build newer than every source of the
 * demo and of the packages it bundles is already there. Returns the build time in ms
 * (0 when the existing build was fresh).
 */
export function buildDemoIfNeeded(): number {
  if (process.env['OUTPOST_E2E_DEMO_DIST'] !== undefined) {
    if (!existsSync(join(DEMO_DIST, 'index.html'))) throw new Error(`OUTPOST_E2E_DEMO_DIST=${DEMO_DIST} has no index.html; build the demo there first`)
    return 0
  }
  const sources = ['src', 'public', 'sw', 'index.html', 'vite.config.ts', 'package.json'].map((p) => join(DEMO_DIR, p))
  for (const pkg of ['core', 'worker', 'client']) sources.push(join(REPO_ROOT, 'packages', pkg, 'src'))
  const newestSource = Math.max(...sources.map(newestMtime))
  if (existsSync(BUILD_STAMP) && existsSync(join(DEMO_DIST, 'index.html'))) {
    const stamp = JSON.parse(readFileSync(BUILD_STAMP, 'utf8')) as { builtAt?: unknown }
    if (typeof stamp.builtAt === 'number' && stamp.builtAt >= newestSource) return 0
  }
  const started = Date.now()
  const vite = join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js')
  const result = spawnSync(process.execPath, [vite, 'build', '--outDir', DEMO_DIST, '--emptyOutDir', '--logLevel', 'warn'], {
    cwd: DEMO_DIR,
    stdio: 'inherit',
  })
  if (result.status !== 0) throw new Error(`the demo build failed (vite build in ${DEMO_DIR}, exit ${String(result.status)}); see the output above`)
  writeFileSync(BUILD_STAMP, JSON.stringify({ builtAt: started }))
  return Date.now() - started
}

/** Starts the relay on `port` (0 = a free one) with its LMDB data in `dataDir` and the suite's rules. */
export function startRelay(options: { port: number; dataDir: string; logFile: string }): Promise<StartedServer> {
  return startServer({
    name: 'relay',
    args: [...NODE_SOURCE_FLAGS, RELAY_CLI, '--host', '127.0.0.1', '--port', String(options.port), '--data-dir', options.dataDir, '--config', RELAY_CONFIG, '--schema', DEMO_SCHEMA, '--log-level', 'info'],
    cwd: REPO_ROOT,
    logFile: options.logFile,
  })
}

/** Serves the built demo on a free port. */
export function startWeb(logFile: string): Promise<StartedServer> {
  return startServer({
    name: 'web',
    args: ['--import', 'tsx', STATIC_SERVER, DEMO_DIST, '0'],
    cwd: REPO_ROOT,
    logFile,
  })
}

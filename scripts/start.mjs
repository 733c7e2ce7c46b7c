#!/usr/bin/env node
// `npm start`: builds the demo when its sources changed, starts the relay (embedded LMDB
// store in ./.outpost-data) and serves the built demo, then says where to open it.
//
//   OUTPOST_PORT      relay port (default 8787)
//   DEMO_PORT         demo port (default 5173)
//   OUTPOST_DATA_DIR  relay data directory (default <repo>/.outpost-data)
//   OUTPOST_HOST      address both listen on (default 127.0.0.1)
//   OUTPOST_DEMO_DIST serve this existing demo build instead of building demo-app/dist
//
// The relay runs from its TypeScript source (this is the repository, not a deployment).
// A relay that dies is restarted on the same port with backoff (1 s, 2 s, 4 s … 30 s; back
// to 1 s once it has stayed up for a minute), each restart logged, and the demo stays up.
// The children run in their own process groups, so a Ctrl-C reaches them once, through
// this script: it forwards SIGINT/SIGTERM to both (the relay drains) and exits 0.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const demoDir = join(root, 'demo-app')
const distDir = process.env.OUTPOST_DEMO_DIST ? resolve(process.env.OUTPOST_DEMO_DIST) : join(demoDir, 'dist')
const buildInfoFile = join(distDir, '.build-info.json')
const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js')
const relayCli = join(root, 'packages', 'server-lite', 'src', 'cli.ts')
// The demo's map schemas, which the app uses too: the relay refuses writes that do not fit them.
const demoSchema = join(root, 'demo-app', 'src', 'schema.ts')
// Node runs the relay's TypeScript source with the workspace's source condition (see
// scripts/source-conditions.ts) and tsx, so `npm start` needs no package build.
const relayNodeFlags = ['--conditions=@outpost/source', '--import', 'tsx']

const host = process.env.OUTPOST_HOST || '127.0.0.1'
const relayPort = parsePort('OUTPOST_PORT', 8787)
const demoPort = parsePort('DEMO_PORT', 5173)
const dataDir = resolve(root, process.env.OUTPOST_DATA_DIR || '.outpost-data')
const startupTimeoutMs = 30_000

function parsePort(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`start: ${name}=${raw} is not a port number (0-65535); unset it to use ${fallback}`)
    process.exit(2)
  }
  return port
}

function log(message) {
  console.log(`[start] ${message}`)
}

// ---- 1. Build the demo if anything it is made of is newer than the last build ---------

/** Newest modification time under `path`, skipping dependencies and build output. */
function newestMtime(path) {
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

function readBuildInfo() {
  try {
    return JSON.parse(readFileSync(buildInfoFile, 'utf8'))
  } catch {
    return null // no build yet, or one from before build info existed: rebuild
  }
}

function buildIfNeeded() {
  if (process.env.OUTPOST_DEMO_DIST) {
    if (!existsSync(join(distDir, 'index.html'))) {
      console.error(`start: OUTPOST_DEMO_DIST=${distDir} has no index.html; build the demo there or unset it`)
      process.exit(2)
    }
    log(`serving the existing demo build in ${distDir}`)
    return
  }
  const sources = [
    join(demoDir, 'src'),
    join(demoDir, 'public'),
    join(demoDir, 'sw'),
    join(demoDir, 'index.html'),
    join(demoDir, 'vite.config.ts'),
    join(root, 'packages', 'client', 'src'),
    join(root, 'packages', 'worker', 'src'),
    join(root, 'packages', 'core', 'src'),
  ]
  const newestSource = Math.max(...sources.map(newestMtime))
  const info = readBuildInfo()
  // The relay port is baked into the build (the app dials the relay on its own host).
  const fresh = info !== null && info.relayPort === relayPort && existsSync(join(distDir, 'index.html')) && info.builtAt >= newestSource
  if (fresh) {
    log('demo build is up to date')
    return
  }
  log('building the demo (vite build)…')
  const started = Date.now()
  const result = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], {
    cwd: demoDir,
    stdio: 'inherit',
    env: { ...process.env, VITE_OUTPOST_PORT: String(relayPort) },
  })
  if (result.status !== 0) {
    console.error('start: the demo build failed (see above); fix it and run npm start again')
    process.exit(result.status ?? 1)
  }
  writeFileSync(buildInfoFile, JSON.stringify({ builtAt: Date.now(), relayPort }) + '\n')
  log(`demo built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

// ---- 2. Run the relay and the static server ---------------------------------------

/** Restart delays of a dying relay: doubling from the first, capped. */
const RESTART_FIRST_MS = 1_000
const RESTART_CAP_MS = 30_000
/** A relay that stayed up this long counts as healthy again: the next restart waits RESTART_FIRST_MS. */
const STABLE_MS = 60_000

const children = new Set()
let stopping = false

/**
 * Starts a child whose stdout is scanned line by line; resolves with the first value
 * `ready(line)` returns, rejects if the child exits or stays silent for too long.
 * `onExit(code, signal)` is called when the child exits while this script is not stopping.
 */
function startChild(name, args, options, ready, onExit) {
  const child = spawn(process.execPath, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  log(`${name} started (pid ${child.pid})`)
  child.on('exit', (code, signal) => {
    children.delete(child)
    if (!stopping) onExit(code, signal)
  })
  return new Promise((resolvePromise, reject) => {
    let settled = false
    const timer = setTimeout(() => {
      if (!settled) reject(new Error(`${name} did not report ready within ${startupTimeoutMs / 1000} s`))
    }, startupTimeoutMs)
    createInterface({ input: child.stdout }).on('line', (line) => {
      process.stdout.write(`[${name}] ${line}\n`)
      if (settled) return
      const value = ready(line)
      if (value !== undefined) {
        settled = true
        clearTimeout(timer)
        resolvePromise(value)
      }
    })
    child.on('exit', () => {
      clearTimeout(timer)
      if (!settled) {
        settled = true
        reject(new Error(`${name} exited before it was ready`))
      }
    })
  })
}

/** The relay logs JSON lines; the one with msg "listening" carries the port. */
function relayListening(line) {
  let entry
  try {
    entry = JSON.parse(line)
  } catch {
    return undefined // not a JSON log line: just echoed
  }
  if (entry === null || typeof entry !== 'object' || entry.msg !== 'listening') return undefined
  return typeof entry.port === 'number' ? entry.port : relayPort
}

/** vite preview prints its URL once it listens. */
function previewListening(line) {
  const match = /https?:\/\/[^\s]+/.exec(line.replace(/\u001b\[[0-9;]*m/g, ''))
  return match ? match[0].replace(/\/$/, '') : undefined
}

function describeExit(code, signal) {
  return signal ?? `code ${code}`
}

/**
 * Keeps the relay running: a relay that exits while the demo is up is started again on
 * the same port (so open pages reconnect by themselves) after a delay that doubles with
 * each restart in a row. Resolves with the port of the first start.
 */
function superviseRelay() {
  let port = relayPort
  let up = false
  let restarts = 0
  let startedAt = 0
  let timer

  const launch = () => {
    startedAt = Date.now()
    return startChild(
      'relay',
      [...relayNodeFlags, relayCli, '--host', host, '--port', String(port), '--data-dir', dataDir, '--schema', demoSchema],
      { cwd: root, env: process.env },
      relayListening,
      onRelayExit,
    )
  }

  function onRelayExit(code, signal) {
    if (!up) return // the first start failed: main() reports it and stops
    if (Date.now() - startedAt >= STABLE_MS) restarts = 0
    const delay = Math.min(RESTART_CAP_MS, RESTART_FIRST_MS * 2 ** restarts)
    restarts++
    log(`relay exited (${describeExit(code, signal)}); restarting it in ${(delay / 1000).toFixed(1)} s (restart ${restarts}); the demo stays up`)
    clearTimeout(timer)
    timer = setTimeout(() => {
      if (stopping) return
      launch().then(
        (back) => log(`relay is back on ws://${host}:${back} (restart ${restarts})`),
        (error) => log(`relay restart ${restarts} failed: ${error.message}`),
      )
    }, delay)
  }

  return launch().then((first) => {
    port = first // a relay asked for port 0 keeps the port it got, which the demo already uses
    up = true
    return first
  })
}

function stop(code, signal = 'SIGTERM') {
  if (stopping) return
  stopping = true
  process.exitCode = code
  for (const child of children) child.kill(signal)
  // A child that ignores SIGTERM for long is killed, so Ctrl-C always returns the shell.
  const force = setTimeout(() => {
    for (const child of children) child.kill('SIGKILL')
  }, 10_000)
  force.unref()
  const poll = setInterval(() => {
    if (children.size === 0) {
      clearInterval(poll)
      process.exit(code)
    }
  }, 50)
}

process.on('SIGINT', () => stop(0, 'SIGINT'))
process.on('SIGTERM', () => stop(0, 'SIGTERM'))
// Whatever ends this script, its children do not outlive it.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

async function main() {
  if (!existsSync(relayCli)) {
    console.error(`start: the relay source is missing (${relayCli}); run this from a complete checkout`)
    process.exit(1)
  }
  buildIfNeeded()

  log(`starting the relay on ${host}:${relayPort} (LMDB data in ${dataDir})`)
  const actualRelayPort = await superviseRelay()

  log(`serving the demo on ${host}:${demoPort}`)
  const demoUrl = await startChild(
    'demo',
    [vite, 'preview', '--host', host, '--port', String(demoPort), '--strictPort', '--outDir', distDir],
    { cwd: demoDir, env: process.env },
    previewListening,
    (code, signal) => {
      console.error(`[start] the demo server exited (${describeExit(code, signal)}); stopping`)
      stop(code === 0 || code === null ? 1 : code)
    },
  )

  const pageUrl = actualRelayPort === relayPort ? demoUrl : `${demoUrl}/?relay=ws://${host}:${actualRelayPort}`
  console.log('')
  console.log(`  Outpost is running.  Relay: ws://${host}:${actualRelayPort}`)
  console.log(`  Open ${pageUrl} in two windows and edit a task in one.`)
  console.log(`  Add ?db=another-device to a URL to act as a second device in the same browser.`)
  console.log('  Press Ctrl-C to stop.')
  console.log('')
}

main().catch((error) => {
  console.error(`start: ${error instanceof Error ? error.message : String(error)}`)
  stop(1)
})

#!/usr/bin/env node
// `npm start`: builds the demo when its sources changed, starts the relay (embedded LMDB
// store in ./.outpost-data) and serves the built demo, then says where to open it.
//
//   OUTPOST_PORT      relay port (default 8787)
//   DEMO_PORT         demo port (default 5173)
//   OUTPOST_DATA_DIR  relay data directory (default <repo>/.outpost-data)
//   OUTPOST_HOST      address both listen on (default 127.0.0.1)
//
// The children run in their own process groups, so a Ctrl-C reaches them once, through
// this script: it forwards SIGINT/SIGTERM to both (the relay drains) and exits as soon
// as either child exits, stopping the other, so it never leaves a half-running demo.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const demoDir = join(root, 'demo-app')
const distDir = join(demoDir, 'dist')
const buildInfoFile = join(distDir, '.build-info.json')
const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js')
const relayCli = join(root, 'packages', 'server-lite', 'bin', 'outpost-server.js')

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

const children = new Set()
let stopping = false

/**
 * Starts a child whose stdout is scanned line by line; resolves with the first value
 * `ready(line)` returns, rejects if the child exits or stays silent for too long.
 */
function startChild(name, args, options, ready) {
  const child = spawn(process.execPath, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  child.on('exit', (code, signal) => {
    children.delete(child)
    if (!stopping) {
      console.error(`[start] ${name} exited (${signal ?? `code ${code}`}); stopping`)
      stop(code === 0 || code === null ? 1 : code)
    }
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
    console.error(`start: the relay CLI is missing (${relayCli}); run npm install at the repo root`)
    process.exit(1)
  }
  buildIfNeeded()

  log(`starting the relay on ${host}:${relayPort} (LMDB data in ${dataDir})`)
  const actualRelayPort = await startChild(
    'relay',
    [relayCli, '--host', host, '--port', String(relayPort), '--data-dir', dataDir],
    { cwd: root, env: process.env },
    relayListening,
  )

  log(`serving the demo on ${host}:${demoPort}`)
  const demoUrl = await startChild(
    'demo',
    [vite, 'preview', '--host', host, '--port', String(demoPort), '--strictPort'],
    { cwd: demoDir, env: process.env },
    previewListening,
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

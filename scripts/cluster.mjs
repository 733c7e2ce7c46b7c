#!/usr/bin/env node
// `npm run cluster`: three relays over the local PostgreSQL, for trying scale-out.
//
//   OUTPOST_STORE         Postgres URL (default postgres://postgres@127.0.0.1:5432/test)
//   OUTPOST_STORE_SCHEMA  schema holding the tables (default outpost_cluster)
//   OUTPOST_BUS           postgres (default) or redis://127.0.0.1:6379
//   OUTPOST_PORT          first relay's port (default 8787; the others take the next two)
//   RELAYS                how many relays (default 3)
//
// Runs `outpost-server migrate` once, then starts the relays from their TypeScript source,
// each in its own process group, and prints their URLs. Ctrl-C drains all of them. Kill
// one (`kill -9 <pid>`, the PIDs are printed) to watch clients fail over to the others;
// it is not restarted, so the failover stays visible.
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const relayCli = join(root, 'packages', 'server-lite', 'src', 'cli.ts')
const nodeFlags = ['--conditions=@outpost/source', '--import', 'tsx']
const store = process.env.OUTPOST_STORE || 'postgres://postgres@127.0.0.1:5432/test'
const schema = process.env.OUTPOST_STORE_SCHEMA || 'outpost_cluster'
const bus = process.env.OUTPOST_BUS || 'postgres'
const firstPort = Number(process.env.OUTPOST_PORT || 8787)
const count = Number(process.env.RELAYS || 3)
if (!Number.isInteger(firstPort) || firstPort < 1 || firstPort > 65533 || !Number.isInteger(count) || count < 1 || count > 16) {
  console.error('cluster: OUTPOST_PORT must be a port (1-65533) and RELAYS a count (1-16)')
  process.exit(2)
}
if (!store.startsWith('postgres://') && !store.startsWith('postgresql://')) {
  console.error(`cluster: OUTPOST_STORE=${store} is not a postgres:// URL; relays share one Postgres`)
  process.exit(2)
}

const log = (message) => console.log(`[cluster] ${message}`)
const common = ['--store', store, '--store-schema', schema, '--bus', bus]

const migrated = spawnSync(process.execPath, [...nodeFlags, relayCli, 'migrate', ...common.slice(0, 4)], { cwd: root, stdio: 'inherit' })
if (migrated.status !== 0) {
  console.error(`cluster: the migration failed (see above); is PostgreSQL running at ${store.replace(/:[^:@/]*@/, ':***@')}?`)
  process.exit(migrated.status ?? 1)
}

const children = new Set()
let stopping = false
for (let i = 0; i < count; i++) {
  const port = firstPort + i
  const child = spawn(process.execPath, [...nodeFlags, relayCli, ...common, '--port', String(port), '--replica-id', `relay-${i + 1}`, '--log-level', 'warn'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  })
  children.add(child)
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      const entry = JSON.parse(line)
      if (entry.msg === 'listening') log(`relay ${i + 1}: ${entry.url} (pid ${child.pid})`)
      else if (entry.msg !== undefined) log(`relay ${i + 1}: ${entry.msg}`)
    } catch {
      console.log(`[relay ${i + 1}] ${line}`)
    }
  })
  child.on('exit', (code, signal) => {
    children.delete(child)
    if (!stopping) log(`relay ${i + 1} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); the others keep serving its clients`)
    if (children.size === 0) process.exit(stopping ? 0 : 1)
  })
}
log(`${count} relays on ${store.replace(/:[^:@/]*@/, ':***@')}, schema ${schema}, bus ${bus}; Ctrl-C stops them`)

const stop = () => {
  if (stopping) return
  stopping = true
  for (const child of children) process.kill(-child.pid, 'SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)

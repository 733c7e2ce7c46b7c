/**
 * `outpost-server`: reads flags, environment and an optional config file, starts the
 * relay (or runs `migrate`, `schema check`, `schema migrate`), and drains on SIGTERM/SIGINT (exit 0). Anything that stops it from starting
 * (a bad flag or setting, a busy port) is one line on stderr that says what to do, and
 * exit code 1.
 */
import { ConfigError, isOutpostError } from '@outpost/core'
import { CLI_HELP, parseFlags } from './cli-options'
import { loadConfig } from './config'
import { createLogger } from './logger'
import { createRelay } from './relay'
import { runSchemaCommand } from './schema-command'
import { SCHEMA_VERSION } from './store/postgres-schema'
import { PostgresStore } from './store/postgres-store'
import { relayVersion } from './version'

/** Prints one line (or a short list) to stderr and sets exit code 1. */
function fail(message: string): void {
  process.stderr.write(`outpost-server: ${message}\n`)
  process.exitCode = 1
}

/** A ConfigError as a person should read it: its one issue on one line, or the list. */
function describeConfigError(error: ConfigError): string {
  const issues = error.details?.['issues']
  if (Array.isArray(issues) && issues.length === 1) return String(issues[0])
  return error.message
}

/** What to do when listening failed, by the system error's code. */
function describeListenError(error: unknown, host: string, port: number): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  const where = `${host}:${port}`
  if (code === 'EADDRINUSE') return `port ${port} on ${host} is already in use (another relay or program listens there); stop it, or start with --port <n> (0 picks a free port)`
  if (code === 'EACCES') return `not allowed to listen on ${where} (ports below 1024 need privileges); use a port from 1024 up, e.g. --port 8787`
  if (code === 'EADDRNOTAVAIL') return `cannot listen on ${where}: ${host} is not an address of this machine; use --host 127.0.0.1 or 0.0.0.0`
  return undefined
}

/** `outpost-server migrate [options]`: brings the Postgres schema up to date, then exits. */
async function migrateCommand(argv: readonly string[]): Promise<void> {
  let config
  try {
    config = await loadConfig({ argv })
  } catch (error) {
    fail(error instanceof ConfigError ? describeConfigError(error) : error instanceof Error ? error.message : String(error))
    return
  }
  if (config.store === 'lmdb') {
    process.stdout.write('outpost-server migrate: the store is LMDB, which needs no migrations; pass --store postgres://… to migrate a Postgres schema\n')
    return
  }
  const applied = await PostgresStore.migrate({ connectionString: config.store, schema: config.storeSchema })
  process.stdout.write(
    applied.length === 0
      ? `outpost-server migrate: schema ${config.storeSchema} is up to date (version ${SCHEMA_VERSION})\n`
      : `outpost-server migrate: schema ${config.storeSchema} migrated to version ${SCHEMA_VERSION} (applied ${applied.join(', ')})\n`,
  )
}

/** `outpost-server schema check|migrate [options]`: see `schema-command.ts`. */
async function schemaCli(argv: readonly string[]): Promise<void> {
  const command = argv[0]
  if (command !== 'check' && command !== 'migrate') {
    fail('schema: use "outpost-server schema check --schema <module>" (drift report) or "outpost-server schema migrate --schema <module>" (upgrade stored records)')
    return
  }
  let config
  try {
    config = await loadConfig({ argv: argv.slice(1) })
  } catch (error) {
    fail(error instanceof ConfigError ? describeConfigError(error) : error instanceof Error ? error.message : String(error))
    return
  }
  const { lines, exitCode } = await runSchemaCommand(command, config)
  process.stdout.write(`${lines.join('\n')}\n`)
  process.exitCode = exitCode
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === 'migrate') {
    await migrateCommand(argv.slice(1))
    return
  }
  if (argv[0] === 'schema') {
    await schemaCli(argv.slice(1))
    return
  }
  let config
  try {
    const parsed = parseFlags(argv)
    if (parsed.help) {
      process.stdout.write(`${CLI_HELP}\n`)
      return
    }
    if (parsed.version) {
      process.stdout.write(`outpost-server ${relayVersion()}\n`)
      return
    }
    config = await loadConfig({ argv })
  } catch (error) {
    fail(error instanceof ConfigError ? describeConfigError(error) : error instanceof Error ? error.message : String(error))
    return
  }
  // Start-up and shutdown lines are printed whatever the log level (supervisors and tests
  // find the port in "listening"), with the same fields as every other log line.
  const lifecycle = createLogger('info')
  let relay
  try {
    relay = await createRelay(config)
  } catch (error) {
    const listen = describeListenError(error, config.host, config.port)
    if (listen !== undefined) {
      fail(listen)
      return
    }
    throw error
  }
  if (!['trace', 'debug', 'info'].includes(config.logLevel)) {
    lifecycle.info({ port: relay.port, url: relay.url, version: relayVersion() }, 'listening')
  }
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second signal means "now": skip the drain.
      process.exit(1)
    }
    stopping = true
    lifecycle.info({ signal }, 'shutting down')
    relay.close().then(
      () => process.exit(0),
      (error: unknown) => {
        lifecycle.error({ err: error }, 'drain failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((error: unknown) => {
  const message = isOutpostError(error) ? `${error.code}: ${error.message}` : error instanceof Error ? (error.stack ?? error.message) : String(error)
  process.stderr.write(`outpost-server failed to start: ${message}\n`)
  process.exit(1)
})

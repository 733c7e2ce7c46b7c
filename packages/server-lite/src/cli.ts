/**
 * `outpost-server`: reads flags, environment and an optional config file, starts the
 * relay, and drains on SIGTERM/SIGINT (exit 0). Invalid configuration prints every
 * problem with how to fix it and exits 1.
 */
import { isOutpostError } from '@outpost/core'
import { CLI_HELP, loadConfig } from './config'
import { createRelay } from './relay'

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${CLI_HELP}\n`)
    return
  }
  let config
  try {
    config = await loadConfig({ argv })
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = 1
    return
  }
  const relay = await createRelay(config)
  if (!['trace', 'debug', 'info'].includes(config.logLevel)) {
    // Supervisors and tests find the port in this line, whatever the log level.
    process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), msg: 'listening', port: relay.port, url: relay.url })}\n`)
  }
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second signal means "now": skip the drain.
      process.exit(1)
    }
    stopping = true
    process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), msg: 'shutting down', signal })}\n`)
    relay.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`drain failed: ${error instanceof Error ? error.stack : String(error)}\n`)
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

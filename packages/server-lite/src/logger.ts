/** The relay's structured JSON logger (pino). */
import { pino, type Logger } from 'pino'
import type { RelayConfig } from './config'

/** A pino logger at the configured level, writing JSON lines to stdout. */
export function createLogger(level: RelayConfig['logLevel']): Logger {
  return pino({ level, base: { service: 'outpost-relay' } })
}

/**
 * The life of each client connection, told once: `connection opened` when its hello is
 * accepted, `connection refused` when it ends before that (bad token, over a limit, no
 * hello, relay not ready) and `connection closed` when an open session ends. Every line
 * carries the same fields: `session`, `transport`, `remote`, `code`, `reason`, `label`,
 * `durationMs` (plus `subject` and `replica` once known), so a person can follow one
 * connection through the log.
 *
 * Closes caused by a limit or a misbehaving client (frame too large, rate and connection
 * limits, policy, slow consumer, hello timeout, missed heartbeats) are logged at `warn`;
 * every other close at `info`. Every close is counted in
 * `outpost_connection_closes_total{reason}`, whose label is derived from the close code
 * through {@link CLOSE_LABELS}, a small fixed set.
 */
import type { Logger } from 'pino'
import type { RelayMetrics } from './metrics'

/** Close codes the relay uses, on the wire and in logs. */
export const CLOSE = {
  /** The client closed normally (or navigated away). */
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** A close frame without a code. */
  NO_STATUS: 1005,
  /** The connection dropped without a close frame (network lost, process killed). */
  ABNORMAL: 1006,
  /** Repeated undecodable frames, an idle HTTP session. */
  POLICY: 1008,
  /** A frame over `limits.maxFrameBytes`. */
  TOO_BIG: 1009,
  INTERNAL: 1011,
  /** The relay is draining: reconnect (to another node). */
  RESTART: 1012,
  PROTOCOL_VERSION: 4000,
  UNAUTHENTICATED: 4001,
  /** The first frame was not a valid hello. */
  HELLO_EXPECTED: 4002,
  TOKEN_EXPIRED: 4003,
  FORBIDDEN: 4004,
  /** Rate limit exceeded repeatedly, or too many connections for one subject. */
  LIMIT: 4008,
  /** The client did not read what it was sent fast enough (its unsent buffer grew past the cap). */
  SLOW_CONSUMER: 4009,
  /** No valid hello within `limits.helloTimeoutMs` of connecting. */
  HELLO_TIMEOUT: 4005,
  /** Nothing heard (frame or pong) for two `limits.heartbeatMs`: the peer is gone; the socket is destroyed. */
  HEARTBEAT_TIMEOUT: 4006,
  /** The client's schema versions differ from the relay's (SCHEMA_OUTDATED says which side is behind). */
  SCHEMA_OUTDATED: 4010,
  /** Refused before the WebSocket upgrade (the relay is starting or draining). Never sent: HTTP 503. */
  UNAVAILABLE: 4503,
} as const

/** The reason label of `outpost_connection_closes_total`. */
export type CloseLabel =
  | 'client_closed'
  | 'connection_lost'
  | 'relay_restart'
  | 'internal_error'
  | 'policy'
  | 'frame_too_large'
  | 'protocol_version'
  | 'unauthenticated'
  | 'hello_expected'
  | 'token_expired'
  | 'forbidden'
  | 'limit'
  | 'slow_consumer'
  | 'hello_timeout'
  | 'heartbeat'
  | 'schema_outdated'
  | 'unavailable'
  | 'other'

/** How a close code is logged and counted. */
export interface CloseClass {
  readonly label: CloseLabel
  readonly level: 'info' | 'warn'
  /** The reason logged when the close carried none. */
  readonly text: string
}

/** Close code → metric label, log level and default reason. Codes not listed are `other` at `info`. */
export const CLOSE_LABELS: Readonly<Record<number, CloseClass>> = {
  [CLOSE.NORMAL]: { label: 'client_closed', level: 'info', text: 'closed by the client' },
  [CLOSE.GOING_AWAY]: { label: 'client_closed', level: 'info', text: 'the client went away' },
  [CLOSE.NO_STATUS]: { label: 'client_closed', level: 'info', text: 'closed by the client' },
  [CLOSE.ABNORMAL]: { label: 'connection_lost', level: 'info', text: 'connection lost without a close frame' },
  [CLOSE.RESTART]: { label: 'relay_restart', level: 'info', text: 'relay restarting' },
  [CLOSE.INTERNAL]: { label: 'internal_error', level: 'warn', text: 'internal error' },
  [CLOSE.POLICY]: { label: 'policy', level: 'warn', text: 'policy violation' },
  [CLOSE.TOO_BIG]: { label: 'frame_too_large', level: 'warn', text: 'frame larger than limits.maxFrameBytes' },
  [CLOSE.PROTOCOL_VERSION]: { label: 'protocol_version', level: 'info', text: 'no common protocol version' },
  [CLOSE.UNAUTHENTICATED]: { label: 'unauthenticated', level: 'info', text: 'token missing or invalid' },
  [CLOSE.HELLO_EXPECTED]: { label: 'hello_expected', level: 'warn', text: 'expected a valid hello' },
  [CLOSE.TOKEN_EXPIRED]: { label: 'token_expired', level: 'info', text: 'token expired' },
  [CLOSE.FORBIDDEN]: { label: 'forbidden', level: 'info', text: 'forbidden' },
  [CLOSE.LIMIT]: { label: 'limit', level: 'warn', text: 'over a limit' },
  [CLOSE.SLOW_CONSUMER]: { label: 'slow_consumer', level: 'warn', text: 'consumer too slow' },
  [CLOSE.HELLO_TIMEOUT]: { label: 'hello_timeout', level: 'warn', text: 'no hello in time' },
  [CLOSE.HEARTBEAT_TIMEOUT]: { label: 'heartbeat', level: 'warn', text: 'missed heartbeats' },
  [CLOSE.SCHEMA_OUTDATED]: { label: 'schema_outdated', level: 'info', text: 'schema versions differ' },
  [CLOSE.UNAVAILABLE]: { label: 'unavailable', level: 'info', text: 'relay not accepting connections' },
}

/** Every label, so /metrics shows each series from the start (at 0). */
export const CLOSE_LABEL_VALUES: readonly CloseLabel[] = [...new Set([...Object.values(CLOSE_LABELS).map((entry) => entry.label), 'other' as const])]

/** The label and level of a close code. */
export function classifyClose(code: number): CloseClass {
  return CLOSE_LABELS[code] ?? { label: 'other', level: 'info', text: `closed with code ${code}` }
}

/** Why a connection ended: its close code and a short reason. */
export interface CloseCause {
  readonly code: number
  readonly reason: string
}

/** What the log needs to know about a connection. */
export interface ConnectionInfo {
  /** The session id. */
  readonly id: string
  readonly transport: 'ws' | 'http'
  /** The peer's address, when known. */
  readonly remote: string | undefined
  /** The authenticated subject, once the hello was accepted. */
  readonly subject: string | undefined
  /** The replica id bound at hello (`''` before). */
  readonly replicaId: string
}

/** Logs and counts connection lifecycle events; see the module comment. */
export class ConnectionLog {
  readonly #logger: Logger
  readonly #metrics: RelayMetrics
  readonly #now: () => number
  readonly #openedAt = new Map<string, number>()

  constructor(logger: Logger, metrics: RelayMetrics, now: () => number) {
    this.#logger = logger
    this.#metrics = metrics
    this.#now = now
  }

  /** A transport connected (no hello yet): starts the connection's clock. */
  connected(connection: ConnectionInfo): void {
    this.#openedAt.set(connection.id, this.#now())
  }

  /** The hello was accepted: the session is open. */
  opened(connection: ConnectionInfo, details: { readonly version: number }): void {
    this.#logger.info({ ...this.#fields(connection), protocol: details.version }, 'connection opened')
  }

  /**
   * The connection ended with `cause`. `wasOpen` tells a close of an open session from a
   * refusal (ended before its hello was accepted).
   */
  closed(connection: ConnectionInfo, cause: CloseCause, wasOpen: boolean): void {
    const { label, level, text } = classifyClose(cause.code)
    this.#metrics.connectionCloses.inc({ reason: label })
    const fields = { ...this.#fields(connection), code: cause.code, reason: cause.reason === '' ? text : cause.reason, label, durationMs: this.#duration(connection.id) }
    this.#openedAt.delete(connection.id)
    this.#logger[level](fields, wasOpen ? 'connection closed' : 'connection refused')
  }

  /** A connection refused before it became a session (the upgrade got HTTP 503). */
  refusedUpgrade(remote: string | undefined, reason: string): void {
    const { label, level } = classifyClose(CLOSE.UNAVAILABLE)
    this.#metrics.connectionCloses.inc({ reason: label })
    this.#logger[level]({ session: null, transport: 'ws', remote: remote ?? null, subject: null, replica: null, code: CLOSE.UNAVAILABLE, reason, label, durationMs: 0 }, 'connection refused')
  }

  #fields(connection: ConnectionInfo): Record<string, unknown> {
    return {
      session: connection.id,
      transport: connection.transport,
      remote: connection.remote ?? null,
      subject: connection.subject ?? null,
      replica: connection.replicaId === '' ? null : connection.replicaId,
    }
  }

  #duration(id: string): number {
    const opened = this.#openedAt.get(id)
    return opened === undefined ? 0 : this.#now() - opened
  }
}

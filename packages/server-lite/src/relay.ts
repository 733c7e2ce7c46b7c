/**
 * The relay process: builds the relay's parts (store, bus, sync, primitives, context), wires
 * WebSocket sessions to one port beside the HTTP routes (`http-routes.ts`: `/healthz`,
 * `/readyz`, `/metrics`, `/admin/*`, `/locks/*`, and the HTTP fallback `POST /sync` +
 * `GET /events` in `http-sync.ts`), runs the background timers (tombstone GC, change-log
 * retention, store polling, schema upgrade at rest), and owns start and stop: a drain that
 * tells every client to reconnect, finishes commits and closes the store.
 *
 * ```
 *   starting ──store open + listening──▶ ready ──drain()──▶ draining ──▶ closed
 * ```
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { DEFAULT_CODEC_LIMITS, Hlc, ShuttingDownError, serializeError, encodeMessage, type MapHint, type ReplicaId, type SchemaSet, type Store } from '@outpost/core'
import type { Logger } from 'pino'
import { WebSocketServer, type WebSocket } from 'ws'
import { createAuthenticator } from './auth/jwt'
import { RuleSet } from './auth/rules'
import { parseConfig, type RelayConfig, type RelayConfigInput } from './config'
import { createLogger } from './logger'
import { createMetrics, type RelayMetrics } from './metrics'
import type { RelayContext } from './relay-context'
import { CLOSE, ConnectionLog } from './connection-log'
import { Heartbeat } from './heartbeat'
import { httpRoutes } from './http-routes'
import { httpSyncHandlers, type HttpSessionEntry } from './http-sync'
import { FairScheduler } from './fair-scheduler'
import { createRelayBudget } from './relay-budget'
import { SubjectBuckets } from './rate-limiter'
import { Session, type SessionTransport } from './session/session'
import { attachWebSocket } from './ws-transport'
import { LmdbStore } from './store/lmdb-store'
import { PostgresStore, redact } from './store/postgres-store'
import { SyncService, assertRelayStore, type RelayStore } from './sync/sync-service'
import type { PipelineContext } from './sync/write-pipeline'
import { SchemaGate, loadSchemas } from './sync/schema-gate'
import { upgradeAtRest } from './sync/schema-job'
import { FunctionService, checkFunctions, loadFunctions, type RelayFunctions } from './primitives/functions'
import { KvLockBackend } from './primitives/lock-backend'
import { ALONE, PostgresLeadership } from './store/postgres-leader'
import { announceRelease, attachBus, openBus } from './bus/relay-bus'
import { LockService } from './primitives/locks'
import { TopicHub } from './primitives/topics'
import { relayVersion } from './version'
import { perMessageDeflate } from './compression'
import { createAdminEndpoints } from './admin/admin-endpoints'

/** Lifecycle states of a relay. */
export type RelayState = 'starting' | 'ready' | 'draining' | 'closed'

/** Options that are code, not configuration (tests, embedding). */
export interface RelayOptions {
  /** The wall clock (ms). */
  readonly now?: () => number
  /** A logger to use instead of a new pino logger at `config.logLevel`. */
  readonly logger?: Logger
  /** A store to use instead of opening LMDB at `config.dataDir` (it is closed with the relay). */
  readonly store?: Store
  /** Entry processors and conflict resolvers, instead of loading `config.functions`. */
  readonly functions?: RelayFunctions
  /** Map schemas to enforce, instead of loading `config.schema`. */
  readonly schemas?: SchemaSet
}

/** A running relay. */
export interface Relay {
  /** The bound port. */
  readonly port: number
  /** `ws://host:port` for clients. */
  readonly url: string
  /** `http://host:port` for the HTTP endpoints. */
  readonly httpUrl: string
  /** The validated configuration. */
  readonly config: RelayConfig
  /** The metrics registry (also served at `/metrics`). */
  readonly metrics: RelayMetrics
  /** The current lifecycle state. */
  readonly state: RelayState
  /** Open sessions. */
  readonly sessionCount: number
  /** Stops accepting, tells clients to reconnect (1012), waits for commits, closes the store. */
  drain(): Promise<void>
  /** Drains, then closes the HTTP server. Idempotent. */
  close(): Promise<void>
  /** Runs tombstone GC now; resolves to the number of records collected. */
  gc(): Promise<number>
}

/** Starts a relay (validating `input` first) and resolves once it listens. */
export async function createRelay(input: RelayConfigInput | RelayConfig = {}, options: RelayOptions = {}): Promise<Relay> {
  const config = parseConfig(input)
  const now = options.now ?? Date.now
  const logger = options.logger ?? createLogger(config.logLevel)
  const metrics = createMetrics()
  const rules = new RuleSet(config.rules)
  const auth = createAuthenticator(config)
  // Loaded before the store opens, so a broken module fails the start without touching data.
  const functions =
    options.functions !== undefined ? checkFunctions(options.functions) : config.functions !== undefined ? await loadFunctions(config.functions) : {}
  const schemaSet = options.schemas ?? (config.schema !== undefined ? await loadSchemas(config.schema) : undefined)
  const schemas = schemaSet !== undefined || config.schemaMode === 'strict' ? new SchemaGate(schemaSet ?? {}, config.schemaMode) : undefined
  if (!auth.enabled) {
    logger.warn('no auth configured: every client connects as "anonymous" with full access unless rules say otherwise; set OUTPOST_JWT_SECRET or OUTPOST_JWKS_URL before exposing this relay')
  }
  let store: RelayStore
  if (options.store !== undefined) {
    store = assertRelayStore(options.store)
  } else if (config.store !== 'lmdb') {
    store = await PostgresStore.open({ connectionString: config.store, schema: config.storeSchema })
  } else {
    mkdirSync(config.dataDir, { recursive: true })
    store = LmdbStore.open({ path: config.dataDir })
  }
  const bus = await openBus(config, now).catch(async (error: unknown) => {
    await store.close().catch(() => undefined)
    throw error
  })
  let publishHints: ((hints: readonly MapHint[]) => void) | undefined
  const sync = new SyncService(store, metrics, logger, { changeLogEntries: config.changeLogEntries, maxTransactionChanges: config.limits.maxTransactionChanges, onCommitted: (hints) => publishHints?.(hints) })
  const clock = new Hlc({ replicaId: config.replicaId as ReplicaId, now, maxDrift: config.maxDriftMs })
  const topics = new TopicHub({ rules, metrics, maxTopicsPerSession: config.limits.maxTopicsPerConnection, maxFrameBytes: config.limits.maxFrameBytes, logger, ...(bus === undefined ? {} : { bus }) })
  const locks = new LockService({
    backend: store instanceof PostgresStore ? store.lockBackend() : new KvLockBackend(store, (batch) => sync.commit(batch), now),
    ...(store instanceof PostgresStore && config.pollMs > 0 ? { retryMs: config.pollMs } : {}),
    ...(bus === undefined ? {} : { announceRelease: (name: string) => announceRelease(bus, logger, name) }),
    rules,
    metrics,
    logger,
    now,
    maxWaitsPerSession: config.limits.maxLockWaitsPerConnection,
  })
  if (bus !== undefined) publishHints = attachBus({ bus, sync, locks, metrics, logger })
  const pipeline: PipelineContext = {
    clock,
    limits: { maxFrameBytes: config.limits.maxFrameBytes, maxElements: DEFAULT_CODEC_LIMITS.maxElements },
    filterFields: (map) => rules.filterFields(map),
    resolution: (map, key, current, incoming) => fns.resolution(map, key, current, incoming),
    schemas,
  }
  const fns: FunctionService = new FunctionService({ functions, sync, metrics, logger, now, replicaId: config.replicaId, timeoutMs: config.limits.processorTimeoutMs, pipeline: () => pipeline })

  let state: RelayState = 'starting'
  const sessions = new Set<Session>()
  const httpSessions = new Map<string, HttpSessionEntry>()
  const perSubject = new Map<string, number>()
  const subjectBuckets = new SubjectBuckets(config.limits.subjectOpsPerSecond, config.limits.subjectOpsBurst, now)

  const connections = new ConnectionLog(logger, metrics, now)
  const context: RelayContext = {
    config,
    logger,
    metrics,
    connections,
    auth,
    rules,
    sync,
    pipeline,
    clock,
    now,
    topics,
    locks,
    functions: fns,
    subjectBucket: (subject) => subjectBuckets.bucket(subject),
    scheduler: new FairScheduler({ budget: createRelayBudget(config.limits.maxQueuedBytes, logger, metrics) }),
    admit(_session, subject) {
      const count = perSubject.get(subject) ?? 0
      if (count >= config.limits.maxConnectionsPerSubject) return false
      perSubject.set(subject, count + 1)
      return true
    },
    sessionClosed(session, subject) {
      sessions.delete(session)
      httpSessions.delete(session.id)
      if (subject !== undefined) {
        const count = (perSubject.get(subject) ?? 1) - 1
        if (count <= 0) perSubject.delete(subject)
        else perSubject.set(subject, count)
      }
    },
  }

  const newSession = (transport: SessionTransport): Session => {
    const session = new Session(randomBytes(16).toString('hex'), context, transport)
    sessions.add(session)
    return session
  }

  // maxPayload bounds the inflated size too: a compressed frame cannot unpack past the frame limit.
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.limits.maxFrameBytes, perMessageDeflate: perMessageDeflate(config.compression) })
  wss.on('connection', (socket: WebSocket, req: IncomingMessage) => {
    attachWebSocket(socket, { maxBufferedBytes: config.limits.maxBufferedBytesPerConnection, maxFrameBytes: config.limits.maxFrameBytes, remote: req.socket.remoteAddress, newSession, logger })
  })
  // Pings every session and drops the silent ones (laptop lid closed, NAT dropped it, a proxy blackholes it).
  const heartbeat = new Heartbeat({ intervalMs: config.limits.heartbeatMs, targets: () => sessions, onTick: () => subjectBuckets.sweep() })
  heartbeat.start()

  const httpSync = httpSyncHandlers({ config, accepting: () => state === 'ready', httpSessions, newSession })
  const startedAt = now()
  const admin = createAdminEndpoints({
    token: config.adminToken,
    relay: () => ({ state, version: relayVersion(), replicaId: config.replicaId, startedAt }),
    sessions: () => sessions,
    store,
    sync,
    locks,
    bus,
    metrics,
    now,
  })

  const server: Server = createServer(httpRoutes({ state: () => state, logger, metrics, auth, store, sync, locks, bus, admin, httpSync }))
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (state !== 'ready') {
      connections.refusedUpgrade(req.socket.remoteAddress, `relay is ${state}`)
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
  server.on('clientError', (_error, socket) => socket.destroy())

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, config.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  state = 'ready'
  logger.info({ port, host: config.host, url: `ws://${host}:${port}`, store: config.store === 'lmdb' ? `lmdb ${config.dataDir}` : `${redact(config.store)} (schema ${config.storeSchema})`, version: relayVersion(), admin: config.adminToken !== undefined }, 'listening')

  const gc = async (): Promise<number> => {
    const collected = await sync.collectTombstones(now(), config.tombstoneHorizonMs)
    if (collected > 0) logger.info({ collected }, 'tombstones collected')
    const trimmed = await sync.trimLogs()
    if (trimmed > 0) logger.info({ trimmed }, 'change-log entries trimmed')
    return collected
  }
  // Changes other relays sharing the store made reach this one's subscribers within one poll at worst.
  const pollTimer =
    config.pollMs > 0 && config.store !== 'lmdb'
      ? setInterval(() => {
          if (state === 'ready') sync.poll().catch((error: unknown) => logger.error({ err: error }, 'polling the store failed'))
        }, config.pollMs)
      : undefined
  pollTimer?.unref()
  // Singleton jobs: among relays sharing a Postgres, only the holder of the jobs lock runs them.
  const leadership = config.store === 'lmdb' ? ALONE : new PostgresLeadership(config.store, config.storeSchema)
  const gcTimer = setInterval(() => {
    if (state !== 'ready') return
    leadership
      .lead()
      .then((leader) => (leader && state === 'ready' ? gc() : 0))
      .catch((error: unknown) => logger.error({ err: error }, 'tombstone GC failed'))
  }, config.gcIntervalMs)
  gcTimer.unref()

  // Records older than their map's schema are upgraded in the background (resumable; see sync/schema-job.ts).
  const upgrading =
    schemas === undefined
      ? undefined
      : upgradeAtRest(logger, () => leadership.lead(), {
          store,
          gate: schemas,
          pipeline,
          replicaId: config.replicaId,
          write: (requests) => sync.write(requests, sync),
          savePosition: (key, value) => sync.commit({ meta: [{ key, value }] }),
          stopped: () => state !== 'ready',
        })

  let draining: Promise<void> | undefined
  const drain = (): Promise<void> => {
    if (draining === undefined) {
      draining = (async () => {
        state = 'draining'
        await upgrading
        logger.info({ sessions: sessions.size }, 'draining')
        const bye = { type: 'error', error: serializeError(new ShuttingDownError('The relay is restarting; reconnect (to another node if there is one)')) } as const
        const frame = encodeMessage(bye)
        for (const session of [...sessions]) session.shutdown(frame, CLOSE.RESTART, 'service restart: reconnect')
        // Leases stay persisted: a lock held now is still held after the restart until its TTL.
        locks.close()
        await leadership.close()
        await sync.settle()
        await bus?.close().catch((error: unknown) => logger.warn({ err: error }, 'closing the bus failed'))
        await store.close()
        logger.info('drained')
      })()
    }
    return draining
  }

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    if (closing === undefined) {
      closing = (async () => {
        await drain()
        clearInterval(gcTimer)
        if (pollTimer !== undefined) clearInterval(pollTimer)
        heartbeat.stop()
        wss.close()
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
        state = 'closed'
      })()
    }
    return closing
  }

  return {
    port,
    url: `ws://${host}:${port}`,
    httpUrl: `http://${host}:${port}`,
    config,
    metrics,
    get state() {
      return state
    },
    get sessionCount() {
      return sessions.size
    },
    drain,
    close,
    gc,
  }
}

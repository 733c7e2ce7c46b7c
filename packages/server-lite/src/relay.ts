/**
 * The relay process: one port for WebSocket sync, the HTTP fallback (`POST /sync` +
 * `GET /events`), `/healthz`, `/readyz`, `/metrics` and the read-only `/admin/*` (see `admin/`); the LMDB store; tombstone GC;
 * and a drain that tells every client to reconnect, finishes commits and closes the store.
 *
 * ```
 *   starting ──store open + listening──▶ ready ──drain()──▶ draining ──▶ closed
 * ```
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { AuthError, DEFAULT_CODEC_LIMITS, Hlc, ShuttingDownError, TokenExpiredError, serializeError, encodeMessage, type MapHint, type ReplicaId, type SchemaSet, type Store } from '@outpost/core'
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
import { HttpTransport } from './http-transport'
import { FairScheduler } from './fair-scheduler'
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
import type { Principal } from './auth/jwt'
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
  const httpSessions = new Map<string, { session: Session; transport: HttpTransport }>()
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
    scheduler: new FairScheduler(),
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

  /**
   * `/readyz`: 200 when the relay serves and its store answers; the body says how the store
   * and the bus are. A bus that is down leaves the relay ready (other relays' changes then
   * arrive by polling, topics stay local), reported as `degraded`.
   */
  const readiness = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
    let storeOk = sync.storeHealthy
    let storeError: string | undefined
    if (storeOk && state === 'ready' && store instanceof PostgresStore) {
      await store.ping().catch((error: unknown) => {
        storeOk = false
        storeError = error instanceof Error ? error.message : String(error)
      })
    }
    const busHealth = bus?.health()
    const isReady = state === 'ready' && storeOk
    return {
      status: isReady ? 200 : 503,
      body: {
        status: !isReady ? (state === 'ready' ? 'store unusable' : state) : busHealth !== undefined && !busHealth.connected ? 'degraded' : 'ready',
        store: { name: store.name, healthy: storeOk, ...(storeError === undefined ? {} : { error: storeError }) },
        bus: busHealth === undefined ? null : { name: bus?.name, ...busHealth },
      },
    }
  }

  const readBody = (req: IncomingMessage, limit: number): Promise<Buffer | undefined> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      req.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > limit) {
          resolve(undefined)
          req.destroy()
          return
        }
        chunks.push(chunk)
      })
      req.on('end', () => resolve(Buffer.concat(chunks)))
      req.on('error', reject)
    })

  const handleSync = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req, config.limits.maxFrameBytes)
    if (body === undefined) {
      res.writeHead(413).end('frame too large')
      return
    }
    const frame = new Uint8Array(body.buffer, body.byteOffset, body.length)
    const header = req.headers['x-outpost-session']
    if (typeof header === 'string' && header !== '') {
      const entry = httpSessions.get(header)
      if (entry === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('unknown or expired session; send hello again')
        return
      }
      if (entry.session.overBudget) {
        // Flow control for the fallback: the client waits and retries instead of queueing in the relay's memory.
        res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '1' }).end('too much work queued on this session; wait for acks, then retry')
        return
      }
      entry.session.receive(frame)
      await entry.session.idle()
      res.writeHead(202).end()
      return
    }
    if (state !== 'ready') {
      res.writeHead(503).end('relay is not accepting sessions')
      return
    }
    const transport = new HttpTransport(config.limits.maxBufferedBytesPerConnection, req.socket.remoteAddress)
    let reply: Uint8Array | undefined
    transport.capture = (f) => {
      reply = f
    }
    const session = newSession(transport)
    transport.onClose = () => session.dispose()
    session.receive(frame)
    await session.idle()
    transport.capture = undefined
    const headers: Record<string, string> = { 'content-type': 'application/msgpack' }
    if (session.state === 'open') {
      httpSessions.set(session.id, { session, transport })
      headers['x-outpost-session'] = session.id
    }
    res.writeHead(200, headers).end(reply === undefined ? Buffer.alloc(0) : Buffer.from(reply))
  }

  const handleEvents = (url: URL, res: ServerResponse): void => {
    const id = url.searchParams.get('session') ?? ''
    const entry = httpSessions.get(id)
    if (entry === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('unknown or expired session; send hello again')
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    res.write(': connected\n\n')
    entry.transport.attach(res)
    entry.session.heard()
    res.on('close', () => {
      if (entry.transport.stream === res) entry.transport.stream = undefined
    })
  }

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

  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body))
  }

  /** The caller of an HTTP lock endpoint: `Authorization: Bearer <jwt>` when auth is on, anonymous otherwise. */
  const httpPrincipal = async (req: IncomingMessage, res: ServerResponse): Promise<Principal | undefined> => {
    const header = req.headers.authorization
    const bearer = typeof header === 'string' && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : undefined
    if (auth.enabled && bearer === undefined) {
      json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'Send Authorization: Bearer <token>' } })
      return undefined
    }
    try {
      return await auth.authenticate(bearer)
    } catch (error) {
      if (error instanceof AuthError || error instanceof TokenExpiredError) {
        json(res, 401, { error: serializeError(error) })
        return undefined
      }
      throw error
    }
  }

  /** `GET /locks/<name>` and `POST /locks/<name>/check`: the fencing check for resources that are not Outpost clients. */
  const handleLocks = async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    const match = /^\/locks\/([^/]+)(\/check)?$/.exec(pathname)
    const isCheck = match?.[2] !== undefined
    if (match === null || (req.method !== (isCheck ? 'POST' : 'GET'))) {
      json(res, 404, { error: { code: 'NOT_FOUND', message: 'Use GET /locks/<name> or POST /locks/<name>/check' } })
      return
    }
    let name: string
    try {
      name = decodeURIComponent(match[1] as string)
    } catch {
      json(res, 400, { error: { code: 'INVALID_MESSAGE', message: 'The lock name is not valid percent-encoding' } })
      return
    }
    if (name.length === 0 || name.length > 256) {
      json(res, 400, { error: { code: 'INVALID_MESSAGE', message: 'A lock name has 1 to 256 characters' } })
      return
    }
    const principal = await httpPrincipal(req, res)
    if (principal === undefined) return
    if (!locks.mayUse(name, principal)) {
      json(res, 403, { error: { code: 'FORBIDDEN', message: `You may not use lock ${name.slice(0, 64)}` } })
      return
    }
    if (!isCheck) {
      json(res, 200, await locks.info(name))
      return
    }
    const body = await readBody(req, 64 * 1024)
    let token: unknown
    try {
      token = body === undefined ? undefined : (JSON.parse(body.toString('utf8')) as { token?: unknown }).token
    } catch {
      token = undefined
    }
    if (typeof token !== 'number' || !Number.isSafeInteger(token) || token < 0) {
      json(res, 400, { error: { code: 'INVALID_MESSAGE', message: 'Send a JSON body { "token": <the fencing token, a non-negative integer> }' } })
      return
    }
    json(res, 200, await locks.verify(name, token))
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://relay')
    const route = `${req.method ?? 'GET'} ${url.pathname}`
    const fail = (error: unknown): void => {
      logger.error({ err: error, route }, 'http handler failed')
      if (!res.headersSent) res.writeHead(500).end('internal error')
      else res.end()
    }
    try {
      if (url.pathname === '/admin' || url.pathname.startsWith('/admin/')) {
        admin(req, res, url).catch(fail)
        return
      }
      if (url.pathname.startsWith('/locks/')) {
        handleLocks(req, res, url.pathname).catch(fail)
        return
      }
      switch (route) {
        case 'GET /healthz':
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok')
          return
        case 'GET /readyz':
          readiness().then(({ status, body }) => json(res, status, body), fail)
          return
        case 'GET /metrics':
          metrics.registry.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text), fail)
          return
        case 'POST /sync':
          handleSync(req, res).catch(fail)
          return
        case 'GET /events':
          handleEvents(url, res)
          return
        default:
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      }
    } catch (error) {
      fail(error)
    }
  })
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

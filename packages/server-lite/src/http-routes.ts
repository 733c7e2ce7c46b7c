/**
 * The relay's HTTP routes (everything but the WebSocket upgrade): `/healthz`, `/readyz`,
 * `/metrics`, the read-only `/admin/*` (see `admin/`), the lock fencing check `/locks/*`,
 * and the HTTP sync fallback (`POST /sync`, `GET /events`; see `http-sync.ts`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { AuthError, TokenExpiredError, serializeError, type Bus } from '@outpost/core'
import type { Logger } from 'pino'
import type { Authenticator, Principal } from './auth/jwt'
import type { RelayMetrics } from './metrics'
import type { LockService } from './primitives/locks'
import type { RelayState } from './relay'
import { PostgresStore } from './store/postgres-store'
import type { RelayStore, SyncService } from './sync/sync-service'
import { readBody, type httpSyncHandlers } from './http-sync'

/** What the routes need from the relay. */
export interface HttpRoutesDeps {
  readonly state: () => RelayState
  readonly logger: Logger
  readonly metrics: RelayMetrics
  readonly auth: Authenticator
  readonly store: RelayStore
  readonly sync: SyncService
  readonly locks: LockService
  readonly bus: Bus | undefined
  /** The `/admin/*` handler (`admin/admin-endpoints.ts`). */
  readonly admin: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>
  /** The HTTP sync fallback's handlers. */
  readonly httpSync: ReturnType<typeof httpSyncHandlers>
}

/** The request listener of the relay's HTTP server; see the module comment. */
export function httpRoutes(deps: HttpRoutesDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { logger, metrics, auth, store, sync, locks, bus, admin } = deps
  const { handleSync, handleEvents } = deps.httpSync

  /**
   * `/readyz`: 200 when the relay serves and its store answers; the body says how the store
   * and the bus are. A bus that is down leaves the relay ready (other relays' changes then
   * arrive by polling, topics stay local), reported as `degraded`.
   */
  const readiness = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
    let storeOk = sync.storeHealthy
    let storeError: string | undefined
    if (storeOk && deps.state() === 'ready' && store instanceof PostgresStore) {
      await store.ping().catch((error: unknown) => {
        storeOk = false
        storeError = error instanceof Error ? error.message : String(error)
      })
    }
    const busHealth = bus?.health()
    const isReady = deps.state() === 'ready' && storeOk
    return {
      status: isReady ? 200 : 503,
      body: {
        status: !isReady ? (deps.state() === 'ready' ? 'store unusable' : deps.state()) : busHealth !== undefined && !busHealth.connected ? 'degraded' : 'ready',
        store: { name: store.name, healthy: storeOk, ...(storeError === undefined ? {} : { error: storeError }) },
        bus: busHealth === undefined ? null : { name: bus?.name, ...busHealth },
      },
    }
  }

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

  return (req, res) => {
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
  }
}

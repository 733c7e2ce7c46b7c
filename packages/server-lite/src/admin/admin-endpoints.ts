/**
 * Read-only admin endpoints, for operators and their tools:
 *
 *   GET /admin                  the relay: state, version, store, bus, session count
 *   GET /admin/sessions         open sessions: transport, remote, subject, replica, subscriptions, flow control
 *   GET /admin/subscriptions    each session's shape subscriptions: map, shape, view, the map's head
 *   GET /admin/maps             maps in the store: kind, record count, head/floor of the change log, Merkle root, views
 *   GET /admin/locks            locks this relay works on (leases it granted, waiters); `?name=` reads any lock from the store
 *   GET /admin/bus              the bus between relays: health and lag (null without a bus)
 *
 * Protected by the admin token (`adminToken`, `--admin-token`, `OUTPOST_ADMIN_TOKEN`), sent as
 * `Authorization: Bearer <token>` and compared in constant time; a missing or wrong token is
 * 401. Without a configured token the endpoints do not exist (404). Nothing here writes, and
 * maps are read from the store (never loaded into the relay's map catalog).
 *
 * Rate limited, so neither a token guesser nor a busy dashboard can load the relay: each
 * remote address may fail the token {@link FAILED_BURST} times, then once every
 * {@link FAILED_EVERY_MS}; and all admin requests together are held to {@link ADMIN_RATE} a
 * second (burst {@link ADMIN_BURST}). Either limit answers 429 `RATE_LIMITED` with
 * `Retry-After`.
 *
 * Lists are paged: `?limit=` (default {@link DEFAULT_PAGE}, at most {@link MAX_PAGE}; maps,
 * which cost a Merkle leaf read each, {@link DEFAULT_MAP_PAGE} / {@link MAX_MAP_PAGE}) and
 * `?after=` the `next` of the previous page, so no answer grows with the relay's size.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { NodeSums, SYNC_TREE_DEPTH, type Bus, type Shape } from '@outpost/core'
import type { RelayMetrics } from '../metrics'
import type { LockService } from '../primitives/locks'
import type { Session } from '../session/session'
import type { RelayStore, Subscriber, SyncService } from '../sync/sync-service'
import { SubjectBuckets, TokenBucket } from '../rate-limiter'
import { AdminToken, bearerOf } from './admin-token'

/** Default and largest page of sessions, subscriptions and locks. */
export const DEFAULT_PAGE = 100
export const MAX_PAGE = 1_000
/** Default and largest page of maps (each reads the map's Merkle leaf sums, up to 65,536 rows). */
export const DEFAULT_MAP_PAGE = 20
export const MAX_MAP_PAGE = 100

/** Failed token checks one remote address may make at once, then one per {@link FAILED_EVERY_MS}. */
export const FAILED_BURST = 60
export const FAILED_EVERY_MS = 1_000
/** Admin requests a second, all callers together, and the burst above it. */
export const ADMIN_RATE = 20
export const ADMIN_BURST = 100
/** Remote addresses tracked for failed tokens; past this, unknown addresses share one bucket. */
export const MAX_TRACKED_ADDRESSES = 10_000

/** What the admin endpoints read. */
export interface AdminSources {
  /** The admin token; undefined turns the endpoints off. */
  readonly token: string | undefined
  readonly relay: () => { readonly state: string; readonly version: string; readonly replicaId: string; readonly startedAt: number }
  readonly sessions: () => Iterable<Session>
  readonly store: RelayStore
  readonly sync: SyncService
  readonly locks: LockService
  readonly bus: Bus | undefined
  readonly metrics: RelayMetrics
  readonly now: () => number
}

/** The two admin rate limits: failed tokens per remote address, and all requests together. */
class AdminRate {
  readonly #failed: SubjectBuckets
  readonly #all: TokenBucket

  constructor(now: () => number) {
    this.#failed = new SubjectBuckets(1000 / FAILED_EVERY_MS, FAILED_BURST, now)
    this.#all = new TokenBucket(ADMIN_RATE, ADMIN_BURST, now)
  }

  /** The bucket of failed tokens from `remote` (shared by all once too many addresses are tracked). */
  #failedOf(remote: string | undefined): TokenBucket {
    if (this.#failed.size >= MAX_TRACKED_ADDRESSES) this.#failed.sweep()
    const key = remote ?? 'unknown'
    return this.#failed.size >= MAX_TRACKED_ADDRESSES && !this.#failed.has(key) ? this.#failed.bucket('overflow') : this.#failed.bucket(key)
  }

  /** The ms `remote` must wait before its token is even checked (0: check it now). */
  failedWait(remote: string | undefined): number {
    return this.#failedOf(remote).wait(1)
  }

  /** Counts a failed token check of `remote`. */
  failed(remote: string | undefined): void {
    this.#failedOf(remote).take(1)
  }

  /** Takes one admin request; returns 0 when granted, else the ms to wait. */
  take(): number {
    return this.#all.take(1)
  }
}

/** A bad query parameter: 400 with a message that says what to send. */
class BadQuery extends Error {}

/** One page of `items` sorted by `key`, after `after`. */
function page<T>(items: readonly T[], key: (item: T) => string, after: string | undefined, limit: number): { items: T[]; next: string | null } {
  const sorted = [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
  const start = after === undefined ? 0 : sorted.findIndex((item) => key(item) > after)
  const rest = start < 0 ? [] : sorted.slice(start)
  const out = rest.slice(0, limit)
  return { items: out, next: rest.length > limit ? key(out[out.length - 1] as T) : null }
}

function paging(url: URL, fallback: number, max: number): { limit: number; after: string | undefined } {
  const raw = url.searchParams.get('limit')
  const limit = raw === null ? fallback : Number(raw)
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new BadQuery(`limit must be a whole number from 1 to ${max}`)
  const after = url.searchParams.get('after') ?? undefined
  if (after !== undefined && after.length > 1024) throw new BadQuery('after must be the `next` of the previous page (at most 1024 characters)')
  return { limit, after }
}

/** Creates the handler of `/admin` and `/admin/*`. */
export function createAdminEndpoints(sources: AdminSources): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> {
  const token = sources.token === undefined ? undefined : new AdminToken(sources.token)
  const rate = new AdminRate(sources.now)

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body))
  }

  /** Every subscription of every open session, read from the map catalog's views (nothing is loaded). */
  const subscriptions = (): { id: string; session: string; sub: number; map: string; view: string; shape: Shape; head: number }[] => {
    const out: { id: string; session: string; sub: number; map: string; view: string; shape: Shape; head: number }[] = []
    for (const state of sources.sync.catalog.watched()) {
      for (const view of state.views.values()) {
        for (const subscriber of view.subscribers as Set<Subscriber>) {
          const session = (subscriber.owner as Session).id
          out.push({ id: `${session}:${String(subscriber.sub).padStart(10, '0')}`, session, sub: subscriber.sub, map: state.map, view: view.id, shape: view.shape, head: state.head })
        }
      }
    }
    return out
  }

  const routes: Record<string, (url: URL) => Promise<unknown>> = {
    '/admin': async () => {
      const relay = sources.relay()
      let count = 0
      for (const _ of sources.sessions()) count++
      return {
        relay: { state: relay.state, version: relay.version, replicaId: relay.replicaId, uptimeMs: sources.now() - relay.startedAt, store: sources.store.name, bus: sources.bus?.name ?? null, sessions: count },
        endpoints: ['/admin/sessions', '/admin/subscriptions', '/admin/maps', '/admin/locks', '/admin/bus'],
      }
    },
    '/admin/sessions': async (url) => {
      const { limit, after } = paging(url, DEFAULT_PAGE, MAX_PAGE)
      const perSession = new Map<string, number>()
      for (const s of subscriptions()) perSession.set(s.session, (perSession.get(s.session) ?? 0) + 1)
      const nowMono = performance.now()
      const all = [...sources.sessions()].map((session) => ({
        id: session.id,
        state: session.state,
        transport: session.transport,
        remote: session.remote ?? null,
        subject: session.subject ?? null,
        replicaId: session.replicaId === '' ? null : session.replicaId,
        subscriptions: perSession.get(session.id) ?? 0,
        lastHeardMsAgo: Math.max(0, Math.round(nowMono - session.lastHeard)),
        paused: session.paused,
        overBudget: session.overBudget,
      }))
      return page(all, (s) => s.id, after, limit)
    },
    '/admin/subscriptions': async (url) => {
      const { limit, after } = paging(url, DEFAULT_PAGE, MAX_PAGE)
      return page(subscriptions(), (s) => s.id, after, limit)
    },
    '/admin/maps': async (url) => {
      const { limit, after } = paging(url, DEFAULT_MAP_PAGE, MAX_MAP_PAGE)
      const names = page(await sources.store.syncMaps(), (name) => name, after, limit)
      const items = []
      for (const map of names.items) {
        const info = await sources.store.mapInfo(map)
        const { head, leaves } = await sources.store.leafSums(map)
        const sums = new NodeSums(SYNC_TREE_DEPTH)
        for (const [leaf, sum] of leaves) sums.addLeaf(leaf, sum)
        const root = sums.node('')
        const state = sources.sync.catalog.peek(map)
        let subscribers = 0
        for (const view of state?.views.values() ?? []) subscribers += view.subscribers.size
        items.push({
          map,
          kind: info?.kind ?? null,
          records: info?.count ?? 0,
          head: info?.head ?? head,
          floor: info?.floor ?? 0,
          root: { hash: root.hash, count: root.count },
          views: state?.views.size ?? 0,
          subscribers,
        })
      }
      return { items, next: names.next }
    },
    '/admin/locks': async (url) => {
      const name = url.searchParams.get('name')
      if (name !== null) {
        if (name.length === 0 || name.length > 256) throw new BadQuery('name must have 1 to 256 characters')
        return { items: [await sources.locks.info(name)], next: null }
      }
      const { limit, after } = paging(url, DEFAULT_PAGE, MAX_PAGE)
      return page(sources.locks.working(), (lock) => lock.name, after, limit)
    },
    '/admin/bus': async () => {
      const bus = sources.bus
      if (bus === undefined) return { bus: null }
      const lag = await sources.metrics.busLagSeconds.get()
      const count = lag.values.find((v) => v.metricName === 'outpost_bus_lag_seconds_count')?.value ?? 0
      const sum = lag.values.find((v) => v.metricName === 'outpost_bus_lag_seconds_sum')?.value ?? 0
      const health = bus.health()
      return { bus: { name: bus.name, ...health, lag: { lastMs: health.lastLagMs ?? null, meanMs: count === 0 ? null : (sum / count) * 1000, samples: count } } }
    },
  }

  return async (req, res, url) => {
    if (token === undefined) {
      json(res, 404, { error: { code: 'NOT_FOUND', message: 'The admin endpoints are off; start the relay with an admin token (--admin-token or OUTPOST_ADMIN_TOKEN) to turn them on' } })
      return
    }
    const remote = req.socket.remoteAddress
    const limited = (wait: number, message: string): void => {
      json(res, 429, { error: { code: 'RATE_LIMITED', message, retryAfterMs: wait } }, { 'retry-after': String(Math.ceil(wait / 1000)) })
    }
    const failedWait = rate.failedWait(remote)
    if (failedWait > 0) {
      limited(failedWait, `Too many requests with a wrong admin token from this address; retry after ${Math.ceil(failedWait / 1000)} s with the relay's admin token`)
      return
    }
    if (!token.matches(bearerOf(req.headers.authorization))) {
      rate.failed(remote)
      json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'Send the relay\'s admin token as Authorization: Bearer <token> (a client token does not open the admin endpoints)' } }, { 'www-authenticate': 'Bearer realm="outpost-admin"' })
      return
    }
    const wait = rate.take()
    if (wait > 0) {
      limited(wait, `The admin endpoints take at most ${ADMIN_RATE} requests a second; retry after ${Math.ceil(wait / 1000)} s (page with a larger ?limit= to need fewer requests)`)
      return
    }
    const route = routes[url.pathname.replace(/\/+$/, '') || '/admin']
    if (req.method !== 'GET' || route === undefined) {
      json(res, 404, { error: { code: 'NOT_FOUND', message: `Use GET on one of /admin, ${Object.keys(routes).slice(1).join(', ')}` } })
      return
    }
    try {
      json(res, 200, await route(url))
    } catch (error) {
      if (!(error instanceof BadQuery)) throw error
      json(res, 400, { error: { code: 'INVALID_MESSAGE', message: error.message } })
    }
  }
}

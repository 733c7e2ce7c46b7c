/**
 * The parts that exist once storage is open, and how they are wired: the map cache feeds
 * shapes, live queries, the inspector feed and live searches; the committer writes; the
 * sync host is the engine as the sync client sees it; the coordinator rides on the sync
 * client. Built once, by the facade (`index.ts`), from what `start-up.ts` restored.
 */
import { serializeError, type Hlc, type ReplicaId, type Store } from '@outpost/core'
import { Coordinator } from '../coordination/coordinator'
import type { Outbox } from '../outbox'
import type { RejectionLog } from '../rejections'
import { LiveSearches } from '../search/live-searches'
import { SyncClient } from '../sync/sync-client'
import type { CallLedger } from './call-ledger'
import { safeCall } from './callbacks'
import { Committer } from './committer'
import type { ConnectionHistory } from './connection-history'
import type { InspectorFeed } from './inspector-feed'
import type { LiveQueries } from './live-queries'
import { MapCache } from './map-cache'
import type { CreateEngineOptions } from './options'
import { ShapeSet } from './shape-set'
import type { EngineState, Restored } from './start-up'
import type { StatusBoard } from './status-board'
import { EngineSyncHost } from './sync-host'
import { WriteProgress } from './write-progress'

/** The parts that exist once storage is open. */
export interface Parts {
  readonly replicaId: ReplicaId
  readonly hlc: Hlc
  readonly maps: MapCache
  readonly shapes: ShapeSet
  readonly committer: Committer
  readonly progress: WriteProgress
  readonly host: EngineSyncHost
  readonly sync: SyncClient
  readonly coordinator: Coordinator
  readonly search: LiveSearches
}

/** What the engine has from its construction, before storage opens, that the parts use. */
export interface EngineShared {
  readonly options: CreateEngineOptions
  readonly now: () => number
  readonly state: EngineState
  readonly outbox: Outbox
  readonly rejections: RejectionLog
  readonly calls: CallLedger
  readonly live: LiveQueries
  readonly status: StatusBoard
  readonly history: ConnectionHistory
  readonly inspectorFeed: InspectorFeed
  /** Hands out subscription ids from the engine's one id space. */
  readonly nextId: () => number
}

/** Builds and wires the parts over the opened `store`; nothing is sent until {@link startParts}. */
export async function buildParts(store: Store, restored: Restored, shared: EngineShared): Promise<Parts> {
  const { options, now, state, outbox, rejections, calls, live, status, history, inspectorFeed } = shared
  const { replicaId, hlc } = restored
  let sync: SyncClient | undefined
  let coordinator: Coordinator | undefined
  const maps = new MapCache(store, {
    loaded: (loaded) => shapes.mapLoaded(loaded),
    keyChanged: (loaded, key, value) => {
      shapes.keyChanged(loaded.kind, loaded.map, key, value)
      live.keyChanged(loaded, key, value)
      inspectorFeed.changed()
      search.keyChanged(loaded, key, value)
    },
  })
  const search = new LiveSearches({
    store,
    durable: () => state.durable,
    now,
    nextId: shared.nextId,
    ...(options.searchPersistDelayMs === undefined ? {} : { persistDelayMs: options.searchPersistDelayMs }),
    ...(options.searchMaxRecords === undefined ? {} : { maxRecords: options.searchMaxRecords }),
    onError: (error) => {
      state.lastError = serializeError(error)
      status.schedule()
    },
  })
  const shapes = new ShapeSet(store, maps, () => sync, options.url !== undefined)
  const committer = new Committer(
    { store, hlc, now, state, maps, shapes, outbox, calls, nextOpId: restored.nextOpId },
    {
      notify: () => live.scheduleNotify(),
      outboxChanged: () => sync?.outboxChanged(),
      statusChanged: () => status.schedule(),
    },
  )
  for (const shape of restored.shapes) await shapes.add(shape)
  const progress = new WriteProgress(outbox, rejections, () => committer.nextOpId)
  const host = new EngineSyncHost({
    store,
    hlc,
    replicaId,
    now,
    state,
    maps,
    shapes,
    committer,
    outbox,
    rejections,
    progress,
    live,
    status,
    history,
    sync: () => sync,
    coordinator: () => coordinator,
  })
  sync = new SyncClient(host, {
    url: options.url,
    WebSocket: options.WebSocket,
    now,
    random: options.random ?? Math.random,
    token: options.token,
    retryMs: options.retryMs,
    pingMs: options.pingMs,
    deadMs: options.deadMs,
    replyTimeoutMs: options.replyTimeoutMs,
    antiEntropyMs: options.antiEntropyMs,
    authRequired: options.authRequired,
    backoff: options.backoff,
    networkEvents: options.networkEvents,
    schemaVersions: options.schemaVersions,
  })
  coordinator = new Coordinator(
    { sync, replicaId, serverNow: () => now() + hlc.offset, call: safeCall },
    options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs },
  )
  return { replicaId, hlc, maps, shapes, committer, progress, host, sync, coordinator, search }
}

/** Settles what the last run left and starts syncing; the engine holds `parts` by now. */
export async function startParts(parts: Parts, restored: Restored, options: CreateEngineOptions): Promise<void> {
  // Older databases kept refused writes in the outbox: refuse them properly now (log, take back).
  if (restored.legacyRejected.length > 0) await parts.host.acked([], restored.legacyRejected)
  // "Work offline" is remembered per database: a reload, a new tab or a restarted worker stays offline.
  if (options.startOffline === true || restored.offline) parts.sync.setOffline(true)
  parts.sync.start()
}

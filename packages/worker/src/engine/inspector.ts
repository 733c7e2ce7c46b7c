/**
 * The engine's read-only inspector: builds {@link InspectorSnapshot}s from the engine's
 * parts (`inspector-feed.ts` pushes them to `subscribeInspector` callbacks).
 *
 * Reading changes nothing. A snapshot reads memory (maps already loaded, shape trees, the
 * outbox mirror, the connection history, leases, topics) and, for maps not in memory, the
 * store's key counts — reads only, never `MapCache.ensure`, which would load a map and
 * change what the engine holds. The list of maps in storage is read once, and each count
 * once: a map's stored records change only through the engine, which loads the map first,
 * so a map that is not in memory cannot have changed since it was listed and counted. A
 * snapshot then costs one pass over the records in memory (visible counts) and over the
 * outbox (its oldest entries), never a sort of either.
 */
import { isAlive, type LwwRecordState, type Store } from '@outpost/core'
import type { EngineStatus } from '../engine-api'
import {
  INSPECTOR_LIMITS,
  type Bounded,
  type InspectedMap,
  type InspectedShape,
  type InspectedWrite,
  type InspectorSnapshot,
  type ShapeSyncState,
} from '../inspector-api'
import type { Outbox, OutboxEntry } from '../outbox'
import type { RejectionLog } from '../rejections'
import type { Coordinator } from '../coordination/coordinator'
import type { SyncClient } from '../sync/sync-client'
import type { ConnectionHistory } from './connection-history'
import { collectionOf, type MapCache } from './map-cache'
import type { ShapeSet } from './shape-set'

/** The collection names of records: `r/<kind>/<map>`. */
const RECORDS = /^r\/(lww|or|counter)\/(.*)$/s

/** What a snapshot reads. */
export interface InspectedParts {
  readonly store: Store
  readonly replicaId: string
  readonly hlc: { readonly offset: number }
  readonly maps: MapCache
  readonly shapes: ShapeSet
  readonly sync: SyncClient
  readonly coordinator: Coordinator
}

/** What the inspector reads besides the parts (available before storage opened). */
export interface InspectorSources {
  readonly database: string
  readonly relayed: boolean
  readonly now: () => number
  readonly outbox: Outbox
  readonly rejections: RejectionLog
  readonly history: ConnectionHistory
  readonly status: () => EngineStatus
  /** The parts, once storage opened. */
  readonly parts: () => InspectedParts | undefined
}

function bounded<T>(all: readonly T[], limit: number): Bounded<T> {
  return { entries: all.slice(0, limit), truncated: Math.max(0, all.length - limit) }
}

function preview(value: unknown): string {
  let text: string
  try {
    text = JSON.stringify(value) ?? ''
  } catch {
    text = String(value)
  }
  return text.length > INSPECTOR_LIMITS.preview ? `${text.slice(0, INSPECTOR_LIMITS.preview - 1)}…` : text
}

/** One outbox entry as the inspector shows it. */
function inspectWrite(entry: OutboxEntry, sent: boolean): InspectedWrite {
  const { kind, map, key, state } = entry.change
  let op: string
  let shown: unknown
  if (kind === 'lww') {
    const lww = state as LwwRecordState
    const names = lww.fields.map(([name]) => name)
    op = names.length === 0 ? 'delete' : `${lww.deleted === null ? 'update' : 'set'} ${names.join(', ')}`
    shown = Object.fromEntries(lww.fields.map(([name, value]) => [name, value]))
  } else if (kind === 'or') {
    const or = state as { adds: readonly unknown[]; removes: readonly unknown[] }
    op = or.adds.length > 0 ? 'add' : 'remove'
    shown = or
  } else {
    op = 'counter'
    shown = state
  }
  return { opId: entry.opId, kind, map, key, at: entry.at, op, preview: preview(shown), sent }
}

/** Builds snapshots; see the module comment. */
export class EngineInspector {
  readonly #sources: InspectorSources
  /** Stored key counts of maps not in memory, by collection (see the module comment). */
  readonly #storedCounts = new Map<string, number>()
  /**
   * The record collections storage held when first listed. A map first written later is in
   * memory (the engine loads a map before writing it), so this list never needs reading again.
   */
  #onDisk: Promise<string[]> | undefined

  constructor(sources: InspectorSources) {
    this.#sources = sources
  }

  /** A snapshot of the engine now. */
  async snapshot(): Promise<InspectorSnapshot> {
    const sources = this.#sources
    const status = sources.status()
    const parts = sources.parts()
    const outbox = sources.outbox
    const oldest = outbox.oldest(INSPECTOR_LIMITS.outbox)
    const rejected = sources.rejections.recent()
    const coordination = parts?.coordinator.inspect() ?? { leases: [], topics: [] }
    return {
      at: sources.now(),
      runtime: {
        mode: status.mode,
        database: sources.database,
        durable: status.durable,
        storage: parts?.store.name ?? null,
        replicaId: parts?.replicaId ?? null,
        clockOffsetMs: parts?.hlc.offset ?? 0,
      },
      connection: {
        state: status.connection,
        relayUrl: status.relayUrl,
        lastSyncAt: status.lastSyncAt,
        lastError: status.lastError,
        transitions: sources.history.list(),
      },
      maps: parts === undefined ? bounded([], 0) : await this.#maps(parts),
      shapes: parts === undefined ? bounded([], 0) : bounded(parts.shapes.all().map((replica): InspectedShape => ({
        id: replica.id,
        shape: replica.shape,
        members: replica.tree.size,
        root: replica.tree.root().hash,
        cursor: replica.cursor ?? null,
        sync: this.#shapeState(parts, replica),
      })), INSPECTOR_LIMITS.shapes),
      outbox: {
        entries: oldest.map((entry) => inspectWrite(entry, outbox.wasSent(entry.opId))),
        truncated: Math.max(0, outbox.pendingCount - oldest.length),
        pending: status.pendingWrites,
        oldestPendingMs: status.oldestPendingMs,
      },
      rejected: { ...bounded(rejected.map(({ opId, map, key, error, at }) => ({ opId, map, key, error, at })), INSPECTOR_LIMITS.rejected), count: status.rejected.count },
      locks: bounded(coordination.leases, INSPECTOR_LIMITS.locks),
      topics: bounded(
        coordination.topics.map(({ topic, subscribers }) => ({ topic, subscribers, presenceRoom: topic.startsWith('presence:') ? topic.slice('presence:'.length) : null })),
        INSPECTOR_LIMITS.topics,
      ),
    }
  }

  #shapeState(parts: InspectedParts, replica: Parameters<SyncClient['shapeProgress']>[0]): ShapeSyncState {
    if (!this.#sources.relayed) return 'local-only'
    const progress = parts.sync.shapeProgress(replica)
    return progress === 'none' ? 'waiting' : progress
  }

  async #maps(parts: InspectedParts): Promise<Bounded<InspectedMap>> {
    const out: InspectedMap[] = []
    const seen = new Set<string>()
    this.#onDisk ??= parts.store.collections().then((all) => all.filter((c) => RECORDS.test(c)))
    const onDisk = await this.#onDisk.catch((error: unknown) => {
      this.#onDisk = undefined
      throw error
    })
    for (const collection of onDisk) {
      const match = RECORDS.exec(collection) as RegExpExecArray
      const kind = match[1] as InspectedMap['kind']
      const map = match[2] as string
      seen.add(collection)
      out.push(await this.#map(parts, kind, map, collection))
    }
    // Maps in memory whose records are not in the store yet (a first write still committing).
    // A shape loads its map in every kind; a kind that holds nothing is not listed.
    for (const loaded of parts.maps.loaded()) {
      if (!seen.has(loaded.collection) && loaded.states.size > 0) out.push(await this.#map(parts, loaded.kind, loaded.map, loaded.collection))
    }
    out.sort((a, b) => Number(b.loaded) - Number(a.loaded) || (a.map < b.map ? -1 : a.map > b.map ? 1 : 0))
    return bounded(out, INSPECTOR_LIMITS.maps)
  }

  async #map(parts: InspectedParts, kind: InspectedMap['kind'], map: string, collection: string): Promise<InspectedMap> {
    const loaded = parts.maps.get(kind, map)
    if (loaded !== undefined) {
      this.#storedCounts.delete(collection)
      let records = 0
      if (kind === 'lww') for (const state of loaded.states.values()) records += isAlive(state as LwwRecordState) ? 1 : 0
      else records = loaded.states.size
      return { kind, map, loaded: true, stored: loaded.states.size, records }
    }
    let stored = this.#storedCounts.get(collection)
    if (stored === undefined) {
      stored = await parts.store.count(collectionOf(kind, map))
      this.#storedCounts.set(collection, stored)
    }
    return { kind, map, loaded: false, stored, records: null }
  }
}

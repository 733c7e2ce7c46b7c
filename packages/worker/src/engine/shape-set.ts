/**
 * The shape set: the shapes this database replicates from the relay, each a
 * {@link ShapeReplica} with its own Merkle tree over the matching keys in memory (and, for
 * a filtered shape, its persisted member keys). The set is persisted in the store's meta,
 * so a shape stays subscribed across restarts until it is unsubscribed.
 *
 * Restoring a shape at start-up reads its members and cursor only: its map is loaded and
 * its tree built when a session needs them ({@link ShapeSet.loadMaps} before subscribing),
 * so a cold start offline answers its first query without either.
 */
import { COUNTERS_MAP, validateShape, type CollectionKind, type Shape, type Store, type Value } from '@outpost/core'
import { ShapeReplica, type AnyState } from '../sync/shape-replica'
import type { SyncClient } from '../sync/sync-client'
import { COLLECTION_KINDS, type LoadedMap, type MapCache } from './map-cache'

/** The shapes this database replicates. */
export class ShapeSet {
  readonly #store: Store
  readonly #maps: MapCache
  /** The sync client to announce added and removed shapes to (undefined while starting). */
  readonly #sync: () => SyncClient | undefined
  /** Whether there is a relay to replicate counters from. */
  readonly #relayed: boolean
  readonly #shapes = new Map<string, ShapeReplica>()
  /** Counters whose collection is already replicated from the relay. */
  #countersReplicated = false

  constructor(store: Store, maps: MapCache, sync: () => SyncClient | undefined, relayed: boolean) {
    this.#store = store
    this.#maps = maps
    this.#sync = sync
    this.#relayed = relayed
  }

  /** Every shape replica. */
  all(): ShapeReplica[] {
    return [...this.#shapes.values()]
  }

  /** The shapes over `map`. */
  ofMap(map: string): ShapeReplica[] {
    return this.all().filter((shape) => shape.shape.map === map)
  }

  /**
   * Adds a shape (a no-op for one already present) and fills its tree from memory, loading
   * its map when needed. Not persisted nor announced: see {@link subscribe}.
   */
  async add(shape: Shape): Promise<ShapeReplica> {
    const replica = new ShapeReplica(shape, () => this.#statesOf(shape.map))
    const existing = this.#shapes.get(replica.id)
    if (existing !== undefined) return existing
    // Registered before any await: a local write committed meanwhile must see the shape, or
    // its key joins neither the members nor the tree and reconciliation never sees it.
    this.#shapes.set(replica.id, replica)
    if (replica.filtered) {
      for (const { key } of await this.#store.scan(replica.membersCollection)) replica.members.add(key)
    }
    const cursor = await this.#store.getMeta(replica.cursorKey)
    if (typeof cursor === 'string') replica.cursor = cursor
    return replica
  }

  /** Every `[kind, key, state]` of `map` in memory: what a replica's tree is built from. */
  *#statesOf(map: string): Generator<readonly [CollectionKind, string, AnyState]> {
    for (const kind of COLLECTION_KINDS) {
      const loaded = this.#maps.get(kind, map)
      if (loaded !== undefined) for (const [key, state] of loaded.states) yield [kind, key, state]
    }
  }

  /**
   * Loads the maps of every shape (each kind), so their trees are complete when read: the
   * sync host calls it before a session subscribes. A map already in memory costs nothing.
   */
  async loadMaps(shapes: readonly ShapeReplica[] = this.all()): Promise<void> {
    for (const map of new Set(shapes.map((shape) => shape.shape.map))) {
      for (const kind of COLLECTION_KINDS) await this.#maps.ensure(kind, map)
    }
  }

  /** Adds a shape, persists the set and tells the sync client; returns its replica. */
  async subscribe(shape: Shape): Promise<ShapeReplica> {
    const replica = await this.add(shape)
    await this.loadMaps([replica])
    await this.#persist()
    this.#sync()?.shapeAdded(replica)
    return replica
  }

  /** Removes a shape (a no-op for an unknown id), tells the sync client and persists the set. */
  async unsubscribe(id: string): Promise<void> {
    const replica = this.#shapes.get(id)
    if (replica === undefined) return
    this.#shapes.delete(id)
    this.#sync()?.shapeRemoved(replica)
    await this.#persist()
  }

  /**
   * A counter is only useful shared: the first time any counter is used, the counters
   * collection is replicated (one shape `{ map: COUNTERS_MAP }` for all of them, persisted
   * like any shape, so a thousand counters cost one subscription) and increments made
   * elsewhere arrive here.
   */
  async replicateCounters(): Promise<void> {
    if (!this.#relayed || this.#countersReplicated) return
    this.#countersReplicated = true
    await this.subscribe(validateShape({ map: COUNTERS_MAP }))
  }

  async #persist(): Promise<void> {
    const shapes = this.all().map((s) => s.shape as unknown as Value)
    await this.#store.commit({ meta: [{ key: 'shapes', value: shapes }] })
  }

  /** True when a shape other than `except` covers `map/key`: its record must stay in memory. */
  coveredElsewhere(except: ShapeReplica, map: string, key: string): boolean {
    for (const shape of this.#shapes.values()) if (shape !== except && shape.shape.map === map && shape.covers(key)) return true
    return false
  }

  /** A map was loaded: the shapes over it whose tree is built already track its keys (the others read them when built). */
  mapLoaded(loaded: LoadedMap): void {
    for (const shape of this.#shapes.values()) {
      if (shape.shape.map !== loaded.map || !shape.treeBuilt) continue
      for (const [key, state] of loaded.states) shape.track(loaded.kind, loaded.map, key, state)
    }
  }

  /** A key changed in memory: the shapes over its map update their trees. */
  keyChanged(kind: CollectionKind, map: string, key: string, state: AnyState | undefined): void {
    for (const shape of this.#shapes.values()) if (shape.shape.map === map) shape.track(kind, map, key, state)
  }
}

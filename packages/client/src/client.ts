/**
 * `createClient`: the one object a web app holds. It picks the runtime (SharedWorker,
 * leader tab, or in-page), hands out maps, counters, OR maps and shapes, reports status,
 * and re-makes every subscription when the engine behind it is replaced.
 */
import { relayUrlList, schemaVersionsOf, validateSearchDeclaration, type MapSchema, type OutpostError, type SchemaInput, type SchemaOutput, type SchemaSet, type SearchDeclaration, type Shape, type Value, type RecordValue } from '@outpost/core'
import type { StandardSchemaV1 } from '@standard-schema/spec'
import type { Endpoint } from 'comlink'
import type { CreateEngineOptions, EngineOptions, RuntimeMode } from '@outpost/worker'
import { ComlinkTransport } from './engine/comlink-transport'
import { DirectTransport } from './engine/direct-transport'
import { EngineSession, type TrackedHandle } from './engine/session'
import type { EngineTransport } from './engine/transport'
import { createCounter, type Counter } from './counter'
import { createInspector, type ClientInspector } from './inspector'
import { createLock, type Lease, type LockHandle } from './lock'
import { createPresence, type Presence, type PresenceOptions } from './presence'
import { createTopic, subscribeTopic, type Topic } from './topic'
import { createLwwMap, type LwwMap } from './lww-map'
import { createOrMap, type OrMap } from './or-map'
import { PendingWrites } from './overlay/pending-writes'
import { detectMode } from './runtime/detect-mode'
import { LeaderTabTransport } from './runtime/leader-tab-transport'
import { openDedicatedWorker, openSharedWorker } from './runtime/open-worker'
import type { RecordSchema } from './schema'
import { createShape, type ShapeHandle } from './shape'
import { createStatusFeed, type StatusFeed, type StatusStore } from './status'

/** Default bound on every call into the engine (ms). */
export const DEFAULT_TIMEOUT_MS = 10_000

/** How often a tab checks that its worker is alive while it has live subscriptions (ms). */
export const DEFAULT_HEARTBEAT_MS = 5_000

/** Options of {@link createClient}. */
export interface ClientOptions<S extends SchemaSet = SchemaSet> {
  /**
   * Relay URL (`ws://` or `wss://`; one relay or a load balancer), or a list of relays
   * sharing one store to fail over through: when a connection fails or drops, the next
   * URL is tried at once, backoff starts only after every URL failed in a row, and
   * unacknowledged writes are re-sent to whichever relay answers (merges are idempotent,
   * so a write the dead relay had committed is not applied twice). Entry-processor calls
   * (`invoke`) are not re-sent: one in flight when the relay dies fails with
   * `OfflineError` and may or may not have run. At most 16 URLs.
   * Omitted: the client works locally only. `status.get().relayUrl` says which is in use.
   * An empty list or a non-ws URL throws `ConfigError` (`CONFIG_INVALID`).
   */
  readonly url?: string | readonly string[]
  /** Database name: tabs of one origin with the same name share one engine and one IndexedDB database. */
  readonly name: string
  /** Returns a token for the relay; called again when the token expires. */
  readonly auth?: () => Promise<string | undefined> | string | undefined
  /** Force a runtime instead of picking the best available one. */
  readonly mode?: RuntimeMode | 'auto'
  /** Start your own SharedWorker (e.g. from your own two-line entry); default: the SDK's entry. */
  readonly worker?: () => SharedWorker
  /**
   * Talk to an engine exposed with `exposeEngine` on a port you own (an iframe, a worker
   * you manage, a `MessageChannel` in tests). Called again to reconnect after a timeout.
   */
  readonly connect?: () => Endpoint
  /** Start your own dedicated worker for leader-tab mode; default: the SDK's entry. */
  readonly dedicatedWorker?: () => Worker
  /**
   * Extra options for the in-page engine (e.g. `WebSocket` and `indexedDB` in Node, or
   * `indexedDB: null` to run in memory). Only used in in-page mode.
   */
  readonly engine?: Partial<Omit<CreateEngineOptions, 'name' | 'url' | 'mode'>>
  /** Bound on every call into the engine before it fails with `TimeoutError` (default 10 s). */
  readonly timeoutMs?: number
  /** How often to check the worker is alive while subscriptions are open (ms, default 5 s; 0 = never). */
  readonly heartbeatMs?: number
  /** Start offline: no connection until `setOffline(false)`. */
  readonly offline?: boolean
  /**
   * Receives typed errors that have no callback of their own: a live query, record,
   * counter, topic or presence whose subscription failed (e.g. `PredicateError` for an
   * invalid `where`) when `subscribe` was given no `onError`. Default: `console.error`.
   * Either way such an error never becomes an uncaught exception.
   */
  readonly onError?: (error: OutpostError) => void
  /**
   * The app's schemas (the module the relay loads with `--schema`): per map a Standard
   * Schema, a version and migrations. `client.map(name)` of such a map is typed and
   * validated by its schema, writes carry its version, older records are upgraded as they
   * are read and written, and `hello` announces the versions (a relay enforcing others
   * refuses the session with SCHEMA_OUTDATED; local data and pending writes are kept).
   */
  readonly schemas?: S
}

/** Options of {@link OutpostClient.map} with a validator. */
export interface MapOptions<S extends RecordSchema> extends MapSearchOption {
  /** A Standard Schema validator (zod, valibot, ...); invalid writes reject with `SchemaValidationError`. */
  readonly schema: S
}

/** Options of {@link OutpostClient.map} without a validator. */
export interface PlainMapOptions extends MapSearchOption {
  readonly schema?: undefined
}

/** The search declaration every map's options may carry. */
export interface MapSearchOption {
  /**
   * Declares a full-text index of these top-level fields, kept in the engine and persisted,
   * so `map.search(text)` works (every handle of this map in this client then searches
   * with it). A malformed declaration throws `QueryError` here.
   */
  readonly search?: SearchDeclaration
}

/** The SDK's entry object; `S` is the app's schema set (`createClient({ schemas })`). */
export interface OutpostClient<S extends SchemaSet = {}> {
  /** Which runtime owns the data in this tab. */
  readonly mode: RuntimeMode
  /** The engine's status: `get()` now, `subscribe()` for changes. */
  readonly status: StatusStore
  /** Resolves once the engine opened its storage (calls made earlier wait for it anyway). */
  ready(): Promise<void>
  /** A map of the app's schema set: typed and validated by its schema (see `ClientOptions.schemas`). */
  map<K extends keyof S & string>(name: K, options?: MapSearchOption): LwwMap<SchemaOutput<S[K]>, SchemaInput<S[K]>>
  /** A map of records; its record type comes from the schema when one is given. */
  map<S extends RecordSchema>(name: string, options: MapOptions<S>): LwwMap<StandardSchemaV1.InferOutput<S>, StandardSchemaV1.InferInput<S>>
  /** A map of records of type `T` (optionally declaring a search index). */
  map<T extends object = RecordValue>(name: string, options?: PlainMapOptions): LwwMap<T>
  /** An add-wins map of sets of `V`. */
  orMap<V extends Value = Value>(name: string): OrMap<V>
  /** A PN counter. */
  counter(name: string): Counter
  /** Replicates a filtered, projected slice of a map from the relay. */
  shape(shape: Shape): ShapeHandle
  /** Replicates a whole map (the shape `{ map }`). */
  sync(map: string): ShapeHandle
  /** A topic: ephemeral messages to other tabs (also offline) and, through the relay, other devices. */
  topic<T = Value>(name: string): Topic<T>
  /**
   * Joins a presence room with this member's state (e.g. `{ name }`): `members` lists who
   * is here (other tabs and devices, this one with `self: true`), kept live by heartbeats.
   */
  presence<S extends object>(room: string, state: S, options?: PresenceOptions): Presence<S>
  /** A named lock on the relay: `acquire({ ttl, wait })` gives a lease with a fencing token. */
  lock(name: string): LockHandle
  /**
   * Forces offline (`true`) or lets the engine connect (`false`). Writes keep working
   * offline. The choice is remembered for this database (every tab, reloads, a restarted
   * worker) until it is changed.
   */
  setOffline(offline: boolean): Promise<void>
  /**
   * Read-only view of the engine for developer tools (maps, shapes, outbox, connection,
   * locks, topics, presence, runtime); reading it changes nothing. `@outpost/client/devtools`
   * renders it as an in-page panel.
   */
  readonly inspector: ClientInspector
  /** Stops this tab's subscriptions and lets go of the engine (stopping it when this tab owns it). */
  close(): Promise<void>
  /** Runtime details for tests and diagnostics. @internal */
  readonly runtime: { readonly isLeader: () => boolean }
}

/** Creates a client; see the README for the modes and options. */
export function createClient<S extends SchemaSet = {}>(options: ClientOptions<S>): OutpostClient<S> {
  // Checked here so a bad address fails the call that gave it, not the worker later.
  const urls = options.url === undefined ? undefined : relayUrlList(options.url)
  const mode =
    options.mode === undefined || options.mode === 'auto' ? (options.worker || options.connect ? 'shared-worker' : detectMode()) : options.mode
  const engineOptions: EngineOptions = {
    name: options.name,
    mode,
    ...(urls === undefined ? {} : { url: urls.length === 1 ? (urls[0] as string) : urls }),
    ...(options.auth === undefined ? {} : { authRequired: true }),
    ...(options.schemas === undefined ? {} : { schemaVersions: schemaVersionsOf(options.schemas) }),
  }
  const transport = createTransport(mode, engineOptions, options)
  const session = new EngineSession(transport, {
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    heartbeatMs: mode === 'in-page' ? 0 : (options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS),
    ...(options.onError === undefined ? {} : { onUnhandledError: options.onError }),
  })
  const cache = new Map<string, unknown>()
  const searchDeclarations = new Map<string, SearchDeclaration>()
  // This tab's own writes not yet answered by the engine: its live queries show them at once.
  // Not in leader-tab mode: there the dedicated worker's link was seen delivering a write's
  // answer before the rows it follows, and the overlay relies on that order (see
  // overlay/pending-writes.ts); those tabs wait for the worker's rows as before.
  const pending = mode === 'leader-tab' ? undefined : new PendingWrites()
  // Names this client to the engine so a topic message is not echoed back to the client that sent it.
  const clientId = globalThis.crypto.randomUUID()
  const leases = new Set<Lease>()
  const presences = new Set<Presence<object>>()
  let nextMember = 1
  const status: StatusFeed = createStatusFeed(session, mode, urls?.[0] ?? null)

  const held: TrackedHandle[] = []
  const auth = options.auth
  if (auth) {
    held.push(
      session.track<true>({
        start: async () => {
          await session.call('setAuthProvider', async () => await auth())
          return true
        },
        stop: async () => {},
      }),
    )
  }

  // The offline switch is re-applied to a replaced engine like any subscription.
  let offlineHandle: TrackedHandle | undefined
  let offlineApplied: Promise<void> = Promise.resolve()
  const applyOffline = (offline: boolean): Promise<void> => {
    offlineHandle?.close()
    let first: ((error?: unknown) => void) | undefined
    const applied = new Promise<void>((resolve, reject) => {
      first = (error) => (error === undefined ? resolve() : reject(error))
    })
    offlineHandle = session.track<true>({
      start: async () => {
        try {
          await session.call('setOffline', offline)
          first?.()
        } catch (error) {
          first?.(error)
          throw error
        } finally {
          first = undefined
        }
        return true
      },
      stop: async () => {},
      onError: () => {},
    })
    return applied
  }
  if (options.offline) offlineApplied = applyOffline(true)

  const client: OutpostClient<S> = {
    mode,
    status,
    async ready() {
      await offlineApplied
      await session.call('ready')
    },
    map(name: string, mapOptions?: MapOptions<RecordSchema> | PlainMapOptions) {
      const defined: MapSchema | undefined = options.schemas !== undefined && Object.hasOwn(options.schemas, name) ? options.schemas[name] : undefined
      if (mapOptions?.search !== undefined) searchDeclarations.set(name, validateSearchDeclaration(mapOptions.search))
      return createLwwMap(
        { session, cache, pending, searchDeclarations },
        name,
        mapOptions?.schema !== undefined ? { schema: mapOptions.schema, version: 1 } : defined,
      ) as never
    },
    orMap: <V extends Value>(name: string) => createOrMap<V>(session, name, cache),
    counter(name) {
      const key = `counter:${name}`
      const hit = cache.get(key)
      if (hit) return hit as Counter
      const counter = createCounter(session, name)
      cache.set(key, counter)
      return counter
    },
    shape: (shape) => createShape(session, shape),
    sync: (map) => createShape(session, { map }),
    topic: <T>(name: string) => createTopic<T>(session, clientId, name),
    presence<S extends object>(room: string, state: S, presenceOptions: PresenceOptions = {}) {
      const name = `presence:${room}`
      const presence: Presence<S> = createPresence<S>(
        room,
        {
          publish: (message) => session.call('publishTopic', name, clientId, message),
          subscribe: (listener, onError, onStarted) => subscribeTopic(session, clientId, name, listener, onError, onStarted),
          onLive: (listener) => {
            let previous = status.get().connection
            return status.subscribe((next) => {
              if (next.connection === 'live' && previous !== 'live') listener()
              previous = next.connection
            })
          },
        },
        state,
        `${clientId}:${nextMember++}`,
        { ...presenceOptions, onError: presenceOptions.onError ?? ((error) => session.reportUnhandled(error)) },
        () => presences.delete(presence as Presence<object>),
      )
      presences.add(presence as Presence<object>)
      return presence
    },
    lock: (name) => createLock(session, name, leases),
    setOffline: (offline) => applyOffline(offline),
    inspector: createInspector(session, () => presences),
    async close() {
      // Leave and release first, while the engine can still tell the others.
      await Promise.allSettled([...[...presences].map((p) => p.leave()), ...[...leases].map((l) => l.release())])
      status.close()
      for (const handle of held) handle.close()
      offlineHandle?.close()
      cache.clear()
      await session.close()
    },
    runtime: { isLeader: () => (transport instanceof LeaderTabTransport ? transport.isLeader : mode !== 'leader-tab') },
  }
  return client
}

function createTransport(mode: RuntimeMode, engineOptions: EngineOptions, options: ClientOptions<SchemaSet>): EngineTransport {
  const connect = options.connect
  if (connect) {
    return new ComlinkTransport({
      mode,
      engineOptions,
      open: () => {
        const endpoint = connect()
        return { endpoint, dispose: () => (endpoint as Partial<MessagePort>).close?.() }
      },
    })
  }
  switch (mode) {
    case 'shared-worker':
      return new ComlinkTransport({ mode, engineOptions, open: () => openSharedWorker(options.name, options.worker, engineOptions.schemaVersions) })
    case 'leader-tab':
      return new LeaderTabTransport({
        name: options.name,
        engineOptions,
        openWorker: () => openDedicatedWorker(options.name, options.dedicatedWorker),
      })
    case 'in-page':
      return new DirectTransport(
        mode,
        // Loaded on demand so tabs served by a worker never download the engine.
        import('@outpost/worker').then(({ createEngine }) =>
          createEngine({ ...options.engine, ...engineOptions, ...(options.offline ? { startOffline: true } : {}) }),
        ),
      )
  }
}

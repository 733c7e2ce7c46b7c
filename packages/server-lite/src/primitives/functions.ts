/**
 * Server-side functions: entry processors (atomic read-modify-write of one key, run by the
 * relay on request) and conflict resolvers (app code that merges a record when a write
 * arrives that lost to a concurrent one), both plain modules named by `config.functions`
 * or passed to `createRelay`.
 *
 * Atomicity: invocations on one key run one at a time (a per-key queue), and `ops` that
 * touch a key with a queued or running invocation wait until it is done, so a processor
 * never sees a value that changes under it and its write is never lost to a race.
 *
 * Writes: a processor (or resolver) returns the record it wants; the relay turns it into an
 * LWW change stamped by its own clock (replica `config.replicaId`), newer than every stamp
 * of the record, and commits and fans it out like any client write:
 *   - `undefined` leaves the record unchanged, `null` deletes it (a tombstone);
 *   - a record that keeps every existing field becomes an *update of the fields that
 *     changed* (concurrent offline edits of other fields survive, as with `update()`);
 *   - a record that drops a field becomes a *set* (tombstone + every field), as with `set()`.
 *
 * Conflict resolvers run when an incoming LWW change carries a field register that is
 * older than the relay's register for that field and holds a different value: the writer
 * had not seen the relay's value (its clock would have stamped later), so plain LWW would
 * silently drop its write. The resolver gets both sides with their stamps and returns the
 * merged record, which the relay writes as a new change newer than both, so every replica
 * converges to it. Writes that are newer than what the relay holds are ordinary overwrites
 * and follow plain LWW. A resolver must be synchronous and deterministic; one that throws
 * is logged and the write falls back to plain LWW.
 */
import { importUserModule } from '../load-module'
import {
  ConfigError,
  ForbiddenError,
  Hlc,
  InvalidValueError,
  NotFoundError,
  ProcessorError,
  assertRecord,
  assertValue,
  cloneValue,
  emptyLww,
  getField,
  isOutpostError,
  OutpostError,
  lwwDeleteState,
  lwwLatest,
  lwwMaxStamp,
  lwwSetState,
  lwwUpdateState,
  lwwView,
  mergeLww,
  recordFromEntries,
  serializeError,
  valuesEqual,
  type Change,
  type InvokeMessage,
  type LwwRecordState,
  type RecordValue,
  type ReplicaId,
  type Stamp,
  type SyncRecord,
  type Value,
} from '@outpost/core'
import type { Logger } from 'pino'
import type { MapAccess } from '../auth/rules'
import type { RelayMetrics } from '../metrics'
import type { SyncService } from '../sync/sync-service'
import { writeRequest, type PipelineContext, type PipelineRequest } from '../sync/write-pipeline'
import type { Caller } from './caller'

/** What an entry processor is given. */
export interface ProcessorContext {
  /** The map and key it runs on. */
  readonly map: string
  readonly key: string
  /** The record as the app sees it (a private copy), or undefined when absent or deleted. */
  readonly value: RecordValue | undefined
  /** The caller's arguments (a private copy). */
  readonly args: Value
  /** The caller's verified token claims (`{}` without auth). */
  readonly claims: Readonly<Record<string, unknown>>
}

/** What an entry processor returns: the new record (`null` deletes, `undefined` leaves it) and a result for the caller. */
export interface ProcessorOutcome {
  readonly value?: RecordValue | null
  readonly result?: Value
}

/** An atomic read-modify-write of one key, run by the relay. Throw to refuse: nothing changes and the caller gets PROCESSOR_FAILED with the message. */
export type EntryProcessor = (ctx: ProcessorContext) => ProcessorOutcome | undefined | void | Promise<ProcessorOutcome | undefined | void>

/** One side of a conflict: the visible fields and each field's stamp. */
export interface ConflictSide {
  readonly value: RecordValue
  readonly stamps: Readonly<Record<string, Stamp>>
}

/** What a conflict resolver is given: the relay's record and the incoming write (only the fields it carries). */
export interface ResolverContext {
  readonly map: string
  readonly key: string
  readonly current: ConflictSide
  readonly incoming: ConflictSide
}

/** Merges a conflicting write into a record; must be synchronous and deterministic. */
export type ConflictResolver = (ctx: ResolverContext) => RecordValue

/** The shape of a functions module (and of `createRelay`'s `functions` option). */
export interface RelayFunctions {
  /** Entry processors by name (the `processor` of `invoke`). */
  readonly processors?: Readonly<Record<string, EntryProcessor>>
  /** Conflict resolvers by map name. */
  readonly resolvers?: Readonly<Record<string, ConflictResolver>>
}

/**
 * Loads a functions module (`.js`/`.mjs`, or `.ts` where Node has a TypeScript loader:
 * see load-module.ts) and checks its exports; throws {@link ConfigError} saying
 * what is wrong.
 */
export async function loadFunctions(path: string): Promise<RelayFunctions> {
  let loaded: Record<string, unknown>
  try {
    loaded = await importUserModule(path)
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new ConfigError(`Invalid relay configuration:\n  - functions ${path}: cannot be loaded (${reason})`, { issues: [`functions: ${reason}`] })
  }
  // A module may export them by name or as its default export.
  const source = (typeof loaded['default'] === 'object' && loaded['default'] !== null && loaded['processors'] === undefined && loaded['resolvers'] === undefined ? loaded['default'] : loaded) as Record<string, unknown>
  return checkFunctions({ processors: source['processors'], resolvers: source['resolvers'] }, path)
}

/** Checks that `functions` holds objects of functions; throws {@link ConfigError} otherwise. */
export function checkFunctions(functions: { processors?: unknown; resolvers?: unknown }, where = 'functions'): RelayFunctions {
  const issues: string[] = []
  const table = (value: unknown, name: string): Record<string, never> | undefined => {
    if (value === undefined) return undefined
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      issues.push(`${where}: ${name} must be an object of functions`)
      return undefined
    }
    for (const [key, fn] of Object.entries(value)) if (typeof fn !== 'function') issues.push(`${where}: ${name}.${key} must be a function`)
    return value as Record<string, never>
  }
  const processors = table(functions.processors, 'processors')
  const resolvers = table(functions.resolvers, 'resolvers')
  if (issues.length > 0) throw new ConfigError(`Invalid relay configuration:\n  - ${issues.join('\n  - ')}`, { issues })
  return { ...(processors === undefined ? {} : { processors }), ...(resolvers === undefined ? {} : { resolvers }) }
}

/** What a {@link FunctionService} needs from its relay. */
export interface FunctionServiceOptions {
  readonly functions: RelayFunctions
  readonly sync: SyncService
  readonly metrics: RelayMetrics
  readonly logger: Logger
  readonly now: () => number
  /** The relay's replica id: its writes are stamped with it. */
  readonly replicaId: string
  /** Longest a processor may run (ms). */
  readonly timeoutMs: number
  /** The write pipeline's view of the relay (read when a processor writes). */
  readonly pipeline: () => PipelineContext
}

/** How long (ms) one invocation keeps running again while other relays keep writing its key before it gives up (see `#run`). */
const PROCESSOR_CONTENTION_MS = 30_000

/** A processor's write met a record newer than the one it read (another relay wrote the key). */
class StaleRead extends OutpostError {
  override readonly name = 'StaleRead'
  /** The record the write met (read in the write's own transaction): the next run starts from it. */
  readonly current: SyncRecord | undefined
  constructor(current: SyncRecord | undefined) {
    super('PROCESSOR_FAILED', 'the record changed while the processor ran')
    this.current = current
  }
}

/** A record already read for an attempt (`record` undefined: the key holds none). */
interface KnownRecord {
  readonly record: SyncRecord | undefined
}

/** Fan-out origin of relay-made writes: no session, so every subscriber (the caller's too) receives them. */
const RELAY_ORIGIN = Object.freeze({})

/** Runs entry processors and conflict resolvers; see the module comment. */
export class FunctionService {
  readonly #options: FunctionServiceOptions
  /** The relay's writer clock; it only ever moves forward past the records it writes over. */
  readonly #clock: Hlc
  readonly #queues = new Map<string, { tail: Promise<void>; pending: number }>()

  constructor(options: FunctionServiceOptions) {
    this.#options = options
    // Stored stamps were checked when written; here they only push the clock forward, never get refused.
    this.#clock = new Hlc({ replicaId: options.replicaId as ReplicaId, now: options.now, maxDrift: Number.MAX_SAFE_INTEGER })
  }

  /** The relay's replica id (clients may not use it). */
  get replicaId(): string {
    return this.#options.replicaId
  }

  /** True when `map` has a conflict resolver. */
  hasResolver(map: string): boolean {
    const resolvers = this.#options.functions.resolvers
    return resolvers !== undefined && Object.hasOwn(resolvers, map)
  }

  /**
   * A promise to await before merging `changes` when one of their keys has an invocation
   * queued or running; undefined when none has. Await it in a loop until undefined, then
   * merge synchronously.
   */
  busy(changes: readonly Change[]): Promise<void> | undefined {
    if (this.#queues.size === 0) return undefined
    for (const change of changes) {
      const queue = this.#queues.get(queueKey(change.map, change.key))
      if (queue !== undefined) return queue.tail
    }
    return undefined
  }

  /**
   * Handles `invoke`: checks it, then queues it behind other invocations on the same key.
   * Resolves once it is queued (not when it ran), so the session's next frames are handled
   * meanwhile, and an `ops` on the same key waits for it.
   */
  async invoke(caller: Caller, access: MapAccess, message: InvokeMessage): Promise<void> {
    const { metrics } = this.#options
    const fail = (error: Error, outcome: string): void => {
      metrics.invocations.inc({ outcome })
      caller.send({ type: 'error', ref: message.id, error: serializeError(error) })
    }
    const processors = this.#options.functions.processors
    const processor = processors !== undefined && Object.hasOwn(processors, message.processor) ? processors[message.processor] : undefined
    if (processor === undefined) {
      fail(new NotFoundError(`No entry processor named ${message.processor.slice(0, 64)} is configured on the relay; check the functions module`, { processor: message.processor.slice(0, 128) }), 'not_found')
      return
    }
    if (!access.write) {
      fail(new ForbiddenError(`You may not write to map ${message.map}`, { map: message.map }), 'forbidden')
      return
    }
    await this.#options.sync.catalog.get(message.map)
    if (!caller.isOpen) return
    const key = queueKey(message.map, message.key)
    let queue = this.#queues.get(key)
    if (queue === undefined) {
      queue = { tail: Promise.resolve(), pending: 0 }
      this.#queues.set(key, queue)
    }
    const entry = queue
    entry.pending++
    entry.tail = entry.tail
      .then(() => this.#run(caller, access, message, processor))
      .catch((error: unknown) => {
        this.#options.logger.error({ err: error, processor: message.processor }, 'entry processor invocation failed unexpectedly')
        fail(new ProcessorError('The relay failed to run this processor; it has been logged'), 'error')
      })
      .finally(() => {
        if (--entry.pending === 0 && this.#queues.get(key) === entry) this.#queues.delete(key)
      })
  }

  /**
   * Runs the processor until its write lands on the record it read. Here, ops on the key wait
   * for it (see `busy`); another relay sharing the store may still write the key meanwhile,
   * so the write carries the sequence number of the record read and is refused when the
   * record moved on: the processor then runs again on the new record (optimistic
   * concurrency), for up to {@link PROCESSOR_CONTENTION_MS}.
   *
   * A loser learns of its loss only when its own refused transaction ends, while the
   * winner's relay starts its next invocation on the key as soon as the winning write is
   * acknowledged: the loser trails every invocation queued there and may lose to each of
   * them in turn (under load, more than 20 in a row). So it runs again at once, on the
   * record its refused write met (handed over, not read again), with no backoff (some write
   * always wins a round, so there is no livelock to break), and it gives up on time, not on
   * a count of lost races, which grows with the queue it trails.
   */
  async #run(caller: Caller, access: MapAccess, message: InvokeMessage, processor: EntryProcessor): Promise<void> {
    const { metrics } = this.#options
    const fail = (error: Error, outcome: string): void => {
      metrics.invocations.inc({ outcome })
      caller.send({ type: 'error', ref: message.id, error: serializeError(error) })
    }
    const { now } = this.#options
    const started = now()
    let known: KnownRecord | undefined
    let attempts = 0
    for (;;) {
      attempts++
      const outcome = await this.#attempt(caller, access, message, processor, fail, known)
      if (outcome === true) return
      known = { record: outcome.current }
      if (now() - started >= PROCESSOR_CONTENTION_MS) break
    }
    fail(
      new ProcessorError(`Processor ${message.processor.slice(0, 64)} kept losing the race for record ${message.key.slice(0, 64)} to other writers (${attempts} attempts in ${PROCESSOR_CONTENTION_MS / 1000} s); nothing was changed. Retry later`, {
        processor: message.processor.slice(0, 128),
        attempts,
      }),
      'contended',
    )
  }

  /**
   * One run of the processor, on `known` when given (else on the record read now); true when
   * done, or the {@link StaleRead} when its write met a record newer than the one it ran on.
   */
  async #attempt(caller: Caller, access: MapAccess, message: InvokeMessage, processor: EntryProcessor, fail: (error: Error, outcome: string) => void, known?: KnownRecord): Promise<true | StaleRead> {
    const { sync, metrics } = this.#options
    const state = await sync.catalog.get(message.map)
    if (state.kind !== undefined && state.kind !== 'lww') {
      fail(new InvalidValueError(`Map ${message.map} holds ${state.kind} data; entry processors work on LWW maps`, { map: message.map }), 'forbidden')
      return true
    }
    const read = known !== undefined ? known.record : (await sync.store.getRecords(message.map, [message.key]))[0]
    const before = read?.state as LwwRecordState | undefined
    if (before !== undefined && !access.visible(lwwLatest(before))) {
      fail(new ForbiddenError(`You may not write record ${message.key.slice(0, 64)} of map ${message.map}`, { map: message.map }), 'forbidden')
      return true
    }
    const view = before === undefined ? undefined : lwwView(before)
    let outcome: ProcessorOutcome | undefined | void
    try {
      outcome = await this.#withTimeout(
        Promise.resolve().then(() =>
          processor({
            map: message.map,
            key: message.key,
            value: view === undefined ? undefined : (cloneValue(view) as RecordValue),
            args: cloneValue(message.args),
            claims: caller.principal.claims,
          }),
        ),
        message.processor,
      )
      if (outcome !== undefined && (typeof outcome !== 'object' || outcome === null || Array.isArray(outcome))) {
        throw new InvalidValueError('a processor must return { value?, result? } or undefined')
      }
      if (outcome?.value !== undefined && outcome.value !== null) assertRecord(outcome.value, 'value')
      if (outcome?.result !== undefined) assertValue(outcome.result, 'result')
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      fail(new ProcessorError(`Processor ${message.processor.slice(0, 64)} failed: ${reason.slice(0, 1000)}; nothing was changed`, { processor: message.processor.slice(0, 128), reason: reason.slice(0, 1000) }), 'failed')
      return true
    }
    const result: Value = outcome?.result ?? null
    const delta = this.#delta(before, outcome?.value)
    if (delta !== undefined) {
      const writer = { replicaId: this.#options.replicaId, access: () => access }
      let request: PipelineRequest
      try {
        const base = writeRequest({ kind: 'lww', map: message.map, key: message.key, state: delta }, writer, state.kind, this.#options.pipeline())
        request = {
          ...base,
          decide(current) {
            if ((current?.seq ?? 0) !== (read?.seq ?? 0)) throw new StaleRead(current)
            return base.decide(current)
          },
        }
      } catch (error) {
        fail(isOutpostError(error) ? error : new ProcessorError('The processor ran but its write was refused'), 'forbidden')
        return true
      }
      let stored
      try {
        ;[stored] = await sync.write([request], RELAY_ORIGIN)
      } catch (error) {
        fail(isOutpostError(error) ? error : new ProcessorError('The processor ran but its write could not be stored; retry'), 'error')
        return true
      }
      if (stored?.status === 'refused' && stored.error instanceof StaleRead) return stored.error
      if (stored?.status === 'refused') {
        const reason = stored.error
        fail(reason.code === 'FORBIDDEN' ? new ForbiddenError(`Processor ${message.processor.slice(0, 64)} would put record ${message.key.slice(0, 64)} outside what you may write (row filter); nothing was changed`, { map: message.map }) : reason, 'forbidden')
        return true
      }
    }
    metrics.invocations.inc({ outcome: 'ok' })
    caller.send({ type: 'invoke-result', id: message.id, result })
    return true
  }

  async #withTimeout<T>(work: Promise<T>, name: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${this.#options.timeoutMs} ms (processor ${name.slice(0, 64)})`)), this.#options.timeoutMs)
    })
    try {
      return await Promise.race([work, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * The resolver's change for an incoming LWW write, to merge right after it; undefined
   * when the map has no resolver, nothing conflicts, or the resolver failed (plain LWW).
   */
  resolution(map: string, key: string, current: LwwRecordState | undefined, incoming: LwwRecordState): LwwRecordState | undefined {
    if (current === undefined || !this.hasResolver(map)) return undefined
    const resolver = this.#options.functions.resolvers?.[map]
    if (resolver === undefined) return undefined
    const mine = aliveFields(current)
    const theirs = aliveFields(incoming)
    let conflict = false
    for (const [name, [value, stamp]] of theirs) {
      const held = mine.get(name)
      if (held !== undefined && stamp < held[1] && !valuesEqual(value, held[0])) {
        conflict = true
        break
      }
    }
    if (!conflict) return undefined
    const side = (fields: Map<string, [Value, Stamp]>): ConflictSide => ({
      value: cloneValue(recordFromEntries([...fields].map(([name, [value]]) => [name, value] as const))) as RecordValue,
      stamps: recordFromEntries([...fields].map(([name, [, stamp]]) => [name, stamp] as const)) as Readonly<Record<string, Stamp>>,
    })
    let resolved: unknown
    try {
      resolved = resolver({ map, key, current: side(mine), incoming: side(theirs) })
      if (resolved instanceof Promise) throw new InvalidValueError('a conflict resolver must return a record synchronously, not a promise')
      assertRecord(resolved, 'resolved')
    } catch (error) {
      this.#options.logger.error({ err: error, map, key: key.slice(0, 64) }, 'conflict resolver failed; keeping plain last-writer-wins')
      return undefined
    }
    return this.#delta(mergeLww(current, incoming), resolved)
  }

  /** The change that turns `current` into `next` (see the module comment), stamped newer than `current`. */
  #delta(current: LwwRecordState | undefined, next: RecordValue | null | undefined): LwwRecordState | undefined {
    if (next === undefined) return undefined
    const view = current === undefined ? undefined : lwwView(current)
    const newest = current === undefined ? null : lwwMaxStamp(current)
    if (newest !== null) this.#clock.receive(newest)
    if (next === null) return view === undefined ? undefined : lwwDeleteState(this.#clock.tick())
    if (view === undefined) {
      // Absent or deleted: fresh fields newer than any tombstone read as exactly `next`.
      return Object.keys(next).length === 0 ? undefined : lwwUpdateState(next, this.#clock.tick())
    }
    const dropped = Object.keys(view).some((name) => !Object.hasOwn(next, name))
    if (dropped) {
      const deleteStamp = this.#clock.tick()
      return lwwSetState(next, deleteStamp, this.#clock.tick())
    }
    const changed = Object.keys(next).filter((name) => !Object.hasOwn(view, name) || !valuesEqual(getField(view, name) as Value, getField(next, name) as Value))
    if (changed.length === 0) return undefined
    return lwwUpdateState(recordFromEntries(changed.map((name) => [name, getField(next, name) as Value] as const)), this.#clock.tick())
  }
}

function queueKey(map: string, key: string): string {
  return `${map}\u0000${key}`
}

/** Alive field registers of a state: name → [value, stamp]. */
function aliveFields(state: LwwRecordState): Map<string, [Value, Stamp]> {
  const fields = new Map<string, [Value, Stamp]>()
  for (const [name, value, stamp] of state.fields) if (state.deleted === null || stamp > state.deleted) fields.set(name, [value, stamp])
  return fields
}

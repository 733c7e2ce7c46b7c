/**
 * The one write pipeline: every change a relay stores — from a session's `ops`, from an
 * entry processor, from a conflict resolver — becomes a store {@link WriteRequest} built
 * here, whose `decide` runs inside the store's transaction against the key's current
 * record. It is checked, in order:
 *
 *   1. the caller may write the map, and the key (key rule) — before anything depends on
 *      whether the key exists, so a write cannot probe for other users' keys;
 *   2. the change is well formed, its stamps within the allowed drift (once, when the
 *      request is built: this needs no stored data), and — in `decide` — it forges no other
 *      replica's writes (`validate-change.ts`);
 *   3. merged with the current record (plus the map's conflict resolver, if any), the
 *      record still fits one frame (a record no subscriber could receive is refused);
 *   4. under a row filter, the record is the caller's before and after the change;
 *   5. for a map with a schema, the merged record validates (upgraded first when older;
 *      `schema-gate.ts`), after the no-op check so replaying a stored write stays a no-op.
 *
 * A refusal is a typed error for that change alone. The log keeps, for maps with a row
 * filter, the filtered fields of the record as it was before (`before`), so a device that
 * resumes from a cursor can be told a record left its view even when it is no longer
 * visible to it.
 */
import {
  ForbiddenError,
  InvalidValueError,
  assertChangeFits,
  encodedSizeBound,
  itemBudget,
  lwwLatest,
  mergeState,
  stateEquals,
  type Change,
  type CollectionKind,
  type CrdtState,
  type Hlc,
  type LwwRecordState,
  type SyncRecord,
  type Value,
  type WireLimits,
  type WriteDecision,
  type WriteRequest,
} from '@outpost/core'
import type { MapAccess } from '../auth/rules'
import type { SchemaGate } from './schema-gate'
import { checkChange, checkForeign } from './validate-change'

/** Who writes: a session, or the relay itself (processors, resolvers). */
export interface Writer {
  /** The replica whose own stamps the writer may carry. */
  readonly replicaId: string
  /** What the writer may do on `map`. */
  access(map: string): MapAccess
}

/** What the pipeline needs from the relay. */
export interface PipelineContext {
  /** The relay's clock: drift checks of incoming stamps. */
  readonly clock: Hlc
  /** Frame limits: a record must fit one frame. */
  readonly limits: WireLimits
  /** The fields the map's row filter reads (kept in the log as `before`), or undefined without a filter. */
  filterFields(map: string): readonly string[] | undefined
  /** The map's conflict resolver's change for an incoming LWW write that lost to a concurrent one, if any. */
  resolution(map: string, key: string, current: LwwRecordState | undefined, incoming: LwwRecordState): LwwRecordState | undefined
  /** The schemas the relay enforces, if it was given any (or runs in strict mode). */
  readonly schemas?: SchemaGate | undefined
}

/** A request plus what fan-out needs to know about the writer once it committed. */
export interface PipelineRequest extends WriteRequest {
  /** True when, if applied, the writer already holds exactly the stored state (nothing to echo back to it). */
  writerUpToDate(state: CrdtState): boolean
}

/**
 * The store request for `change` by `writer`. `kind` is the map's kind as the relay knows
 * it (undefined for a map never written); a change of another kind is refused at once.
 * Throws the typed error when the change is refused before it needs the current record.
 */
export function writeRequest(change: Change, writer: Writer, kind: CollectionKind | undefined, context: PipelineContext): PipelineRequest {
  const access = writer.access(change.map)
  if (!access.write) throw new ForbiddenError(`You may not write to map ${change.map}`, { map: change.map })
  if (kind !== undefined && kind !== change.kind) {
    throw new InvalidValueError(`Map ${change.map} holds ${kind} data; this change is ${change.kind}. Use a different map name`, { map: change.map, kind })
  }
  if (access.filter !== undefined && change.kind !== 'lww') {
    throw new ForbiddenError(`Map ${change.map} has a row filter, which only LWW maps support; the write is refused`, { map: change.map })
  }
  if (!access.keyAllowed(change.key)) {
    throw new ForbiddenError(`You may not write key ${change.key.slice(0, 64)} of map ${change.map}: it is outside the keys this map's rule gives you`, { map: change.map })
  }
  // Well-formedness, drift and whose stamps these are need no stored data: checked once, here, not in the transaction.
  const foreign = checkChange(change, { clock: context.clock, replicaId: writer.replicaId })
  context.schemas?.admit(change)
  const where = (): string => `${change.map}/${change.key.slice(0, 64)}`
  const budget = itemBudget(context.limits)
  // The record's room in a frame: its key and map name travel with it.
  const roomBytes = budget.bytes - change.key.length * 3 - change.map.length * 3 - 64
  const roomElements = budget.elements - 16
  const filterFields = access.filter === undefined ? undefined : context.filterFields(change.map)
  return {
    map: change.map,
    kind: change.kind,
    key: change.key,
    decide(record: SyncRecord | undefined): WriteDecision | undefined {
      const current = record?.state
      if (foreign !== undefined) checkForeign(change, foreign, current)
      let after = current === undefined ? change.state : mergeState(change.kind, current as never, change.state as never)
      // A write that lost to one it had not seen goes to the map's conflict resolver, if any.
      if (change.kind === 'lww') {
        const resolved = context.resolution(change.map, change.key, current as LwwRecordState | undefined, change.state)
        if (resolved !== undefined) after = mergeState('lww', after as LwwRecordState, resolved)
      }
      if (current !== undefined && stateEquals(change.kind, current as never, after as never)) return undefined
      if (change.kind === 'lww' && context.schemas !== undefined) after = context.schemas.check(change.map, after as LwwRecordState, where(), context.clock.replicaId)
      // Exact only when a cheap upper bound says it might not fit (most records are far below the limit).
      const bound = encodedSizeBound(after, roomBytes, roomElements)
      if (bound.bytes > roomBytes || bound.elements > roomElements) {
        assertChangeFits({ ...change, state: after } as Change, context.limits, `the record ${where()} after this write`)
      }
      if (access.filter !== undefined) {
        if (current !== undefined && !access.visible(lwwLatest(current as LwwRecordState))) {
          throw new ForbiddenError(`You may not write record ${change.key.slice(0, 64)} of map ${change.map}`, { map: change.map })
        }
        if (!access.visible(lwwLatest(after as LwwRecordState))) {
          throw new ForbiddenError(`This write would put record ${change.key.slice(0, 64)} of map ${change.map} outside what you may write (row filter)`, { map: change.map })
        }
      }
      const before = filterFields === undefined || current === undefined ? undefined : projectFields(lwwLatest(current as LwwRecordState), filterFields)
      return before === undefined ? { state: after } : { state: after, before }
    },
    writerUpToDate: (state) => stateEquals(change.kind, state as never, change.state as never),
  }
}

/** `record` reduced to `fields` (absent fields stay absent). */
function projectFields(record: Readonly<Record<string, Value>>, fields: readonly string[]): Value {
  const out: Record<string, Value> = {}
  for (const field of fields) {
    if (Object.hasOwn(record, field)) Object.defineProperty(out, field, { value: record[field] as Value, enumerable: true, writable: true, configurable: true })
  }
  return out
}

/**
 * The messages leader and follower tabs exchange over BroadcastChannel in leader-tab mode:
 * a small request/response protocol for engine calls plus one-way events for callbacks.
 * Every tab sees every message; `to` says whom it is for.
 *
 *   follower                               leader (holds the Web Lock, runs the worker)
 *   who-leads {from}                ───▶
 *                                   ◀───   leader {leader}          (also sent unasked on taking over)
 *   call {from, to, req, method, args} ──▶   args' callbacks are {callback: n} references
 *                                   ◀───   answer {to, req, ok, value | error}
 *                                   ◀───   event {to, callback, args}   a callback fired
 *   bye {from}                      ───▶   the follower left: its subscriptions are dropped
 *                                   ◀───   abdicate {leader}        the leader is leaving
 */
import type { SerializedError } from '@outpost/core'
// The method table only: the engine itself loads lazily (in-page mode) or in a worker.
import { ENGINE_METHOD_NAMES, methodSpec } from '@outpost/worker/methods'
import type { EngineMethod } from '../engine/transport'

/** A callback argument, replaced by a number the follower can map back to its function. */
export interface CallbackRef {
  readonly callback: number
  readonly __outpostCallback: true
}

/** Every message of the tab protocol. */
export type TabMessage =
  | { readonly type: 'who-leads'; readonly from: string }
  | { readonly type: 'leader'; readonly leader: string }
  | { readonly type: 'abdicate'; readonly leader: string }
  | {
      readonly type: 'call'
      readonly from: string
      readonly to: string
      readonly req: number
      readonly method: EngineMethod
      readonly args: readonly unknown[]
    }
  | { readonly type: 'answer'; readonly to: string; readonly req: number; readonly ok: true; readonly value: unknown }
  | { readonly type: 'answer'; readonly to: string; readonly req: number; readonly ok: false; readonly error: SerializedError }
  | { readonly type: 'event'; readonly to: string; readonly callback: number; readonly args: readonly unknown[] }
  | { readonly type: 'bye'; readonly from: string }

const TYPES: ReadonlySet<string> = new Set(['who-leads', 'leader', 'abdicate', 'call', 'answer', 'event', 'bye'])

/** True for a message of the tab protocol (the channel is ours, but other code could post on it). */
export function isTabMessage(data: unknown): data is TabMessage {
  return typeof data === 'object' && data !== null && 'type' in data && typeof data.type === 'string' && TYPES.has(data.type)
}

/** True for a callback reference inside a call's arguments. */
export function isCallbackRef(value: unknown): value is CallbackRef {
  return typeof value === 'object' && value !== null && '__outpostCallback' in value && value.__outpostCallback === true
}

/**
 * Which method ends the subscription a subscribe method made (ids of records and values
 * share the query id space), from the engine's method table. Streams (write progress,
 * lock leases) end on their own and are not tracked across tabs.
 */
export const UNSUBSCRIBE_OF: Partial<Record<EngineMethod, EngineMethod>> = Object.fromEntries(
  ENGINE_METHOD_NAMES.flatMap((method) => {
    const spec = methodSpec(method)
    return spec.kind === 'subscription' ? [[method, spec.end as EngineMethod]] : []
  }),
)

/** Methods that end a subscription (their callbacks can be forgotten). */
export const UNSUBSCRIBE_METHODS: ReadonlySet<EngineMethod> = new Set(Object.values(UNSUBSCRIBE_OF))

/**
 * Write methods and the number of arguments they take before their optional `callId`
 * (from the engine's method table). A follower tags each write with a call id, so a call
 * re-sent to a new leader (the old one closed before answering) is answered from the
 * engine's record instead of repeated.
 */
export const WRITE_ARITY: Partial<Record<EngineMethod, number>> = Object.fromEntries(
  ENGINE_METHOD_NAMES.flatMap((method) => {
    const callId = methodSpec(method).callId
    return callId === undefined ? [] : [[method, callId]]
  }),
)

/**
 * Type tests of core's public surface: checked by `tsc -p packages/core/tsconfig.test.json`
 * (part of `npm run typecheck`), never executed.
 */
import { expectTypeOf } from 'vitest'
import {
  ClockDriftError,
  Hlc,
  OutpostError,
  QueryView,
  deserializeError,
  lwwView,
  serializeError,
  type Change,
  type ClientMessage,
  type ErrorCode,
  type LwwRecordState,
  type Predicate,
  type RecordValue,
  type ReplicaId,
  type SerializedError,
  type Shape,
  type Stamp,
} from '../src/index'

// Branded ids do not accept plain strings.
expectTypeOf<string>().not.toMatchTypeOf<ReplicaId>()
expectTypeOf<string>().not.toMatchTypeOf<Stamp>()
expectTypeOf(new Hlc({ replicaId: 'r1' as ReplicaId }).tick()).toEqualTypeOf<Stamp>()

// Errors keep a typed code and their class.
expectTypeOf(new ClockDriftError('x', 1)).toMatchTypeOf<OutpostError>()
expectTypeOf(new ClockDriftError('x', 1).receiverTime).toEqualTypeOf<number>()
expectTypeOf<OutpostError['code']>().toEqualTypeOf<ErrorCode>()
expectTypeOf(serializeError).returns.toEqualTypeOf<SerializedError>()
expectTypeOf(deserializeError).returns.toEqualTypeOf<OutpostError>()

// Records read back as plain field maps, or undefined when deleted.
expectTypeOf(lwwView).parameter(0).toEqualTypeOf<LwwRecordState>()
expectTypeOf(lwwView).returns.toEqualTypeOf<RecordValue | undefined>()

// Predicates are a closed language: unknown operators do not type-check.
expectTypeOf<{ eq: ['done', false] }>().toMatchTypeOf<Predicate>()
expectTypeOf<{ and: [{ exists: 'owner' }, { in: ['status', ['a', 'b']] }] }>().toMatchTypeOf<Predicate>()
expectTypeOf<{ like: ['title', '%x%'] }>().not.toMatchTypeOf<Predicate>()
expectTypeOf<{ map: 'todos'; where: { eq: ['owner', 'u1'] }; fields: ['title']; limit: 10 }>().toMatchTypeOf<Shape>()

// Protocol messages are a union discriminated on `type`.
expectTypeOf<Extract<ClientMessage, { type: 'ops' }>['changes']>().toEqualTypeOf<Change[]>()
expectTypeOf<ClientMessage['type']>().toEqualTypeOf<
  | 'hello' | 'subscribe' | 'unsubscribe' | 'reconcile' | 'entries' | 'ops' | 'credit' | 'ping'
  | 'topic-sub' | 'topic-unsub' | 'topic-pub' | 'lock-acquire' | 'lock-extend' | 'lock-release' | 'lock-check' | 'invoke'
>()

// A live query view yields keyed rows.
expectTypeOf(new QueryView({}).rows()).toMatchTypeOf<readonly { key: string; value: RecordValue }[]>()

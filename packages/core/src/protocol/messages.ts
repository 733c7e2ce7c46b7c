/**
 * The wire protocol: every message is a member of a union on a string-literal `type`,
 * described by a zod schema (the single source of truth for its TypeScript type) and
 * checked by `isX` guards / {@link parseClientMessage} / {@link parseServerMessage} at the
 * boundary. Frames are msgpack (see `codec.ts`).
 *
 * Session outline (client drives):
 *
 *   client                                   relay
 *   hello {versions, token, replicaId, schemas?} ───▶
 *                                       ◀─── welcome {version, serverTime, horizonMs}   (or error + close)
 *   subscribe {sub, shape, root}        ───▶
 *                                       ◀─── subscribed {sub, root}
 *         (roots differ → descend; equal → nothing to do)
 *   reconcile {sub, nodes}              ───▶ the client's hashes for some paths
 *                                       ◀─── nodes {sub, nodes}       relay's children of differing paths, or
 *                                       ◀─── changes {sub, changes}   records of small differing subtrees
 *                                       ◀─── push {sub, keys}         keys the client has that the relay lacks/differs
 *   entries {sub, path, entries}        ───▶ the client's [key, digest] list under a small differing path
 *                                       ◀─── synced {sub, root, cursor, frames}  this round is complete (frames: changes frames sent before it)
 *   ops {id, changes}                   ───▶
 *                                       ◀─── ack {id, results}         after the store committed
 *                                       ◀─── changes {sub, changes, moveOut, frame}  live fan-out (frame: number per subscription)
 *
 * Coordination primitives (need the relay; of them only lock tokens and leases are stored):
 *   topic-sub / topic-unsub {topic}; topic-pub {id, topic, data} ─▶ topic-ack {id, delivered};
 *     other subscribers get topic-msg {topic, from, seq, data} (ordered per publisher)
 *   lock-acquire {id, name, ttl, wait} ─▶ lock-granted {id, name, token, expiresAt} (FIFO) or error {ref: id}
 *   lock-extend / lock-release / lock-check {id, name, token} ─▶ lock-granted / lock-released / lock-status
 *     a lease that ends without release ─▶ lock-lost {name, token, reason}
 *   invoke {id, map, key, processor, args} ─▶ invoke-result {id, result} or error {ref: id};
 *     the processor's write syncs like any other change
 */
import { z } from 'zod'
import type { Change, CounterState, FieldEntry, LwwRecordState, OrSetState, ReplicaId, Stamp, Value } from '../types'
import type { Predicate, Shape } from '../query/types'
import { isErrorCode, type ErrorCode, type SerializedError } from '../errors'
import { KEY_LIMITS } from '../keys'
import { isWellFormed } from '../unicode'
import { MAX_SCHEMA_VERSION } from '../schema/migrate'
import { MAX_ANNOUNCED_SCHEMAS } from '../schema/versions'

/**
 * Protocol versions this build speaks, newest last. `hello` negotiates the highest common
 * one. Version 2 packs change lists (see `wire-v2.ts`); the messages are the same.
 */
export const PROTOCOL_VERSIONS = [1, 2] as const
/** The version this build prefers. */
export const PROTOCOL_VERSION = 2

/** Numbers the limits of one frame's content (the codec enforces byte/depth/element limits). */
export const MESSAGE_LIMITS = {
  maxChangesPerFrame: 10_000,
  maxKeyLength: KEY_LIMITS.maxKeyLength,
  maxMapNameLength: KEY_LIMITS.maxMapNameLength,
  maxNodesPerFrame: 4096,
  maxKeysPerFrame: 50_000,
  /** Field registers of one LWW record in a change. */
  maxFieldsPerRecord: 10_000,
  /** Adds (and, apart, removes) of one OR set, or replicas of one counter, in a change. */
  maxSetEntries: 100_000,
  /** Longest stamp string. */
  maxStampLength: 512,
  /** Longest replica id. */
  maxReplicaIdLength: 128,
} as const

// A value is checked structurally by `assertValue` where it is used; here it only has to be msgpack-decoded data.
const value = z.custom<Value>((v) => v !== undefined, { message: 'a value is required (null is a value; undefined is not)' })
const stamp = z.string().min(1).max(MESSAGE_LIMITS.maxStampLength) as unknown as z.ZodType<Stamp>
const replicaId = z.string().min(1).max(MESSAGE_LIMITS.maxReplicaIdLength) as unknown as z.ZodType<ReplicaId>
// Keys, map names and field names must be well-formed (see `unicode.ts`); the same rule as the write API's `assertKey`/`assertMapName`.
const wellFormed = { message: 'must be well-formed text (no lone surrogate)' }
const key = z.string().max(MESSAGE_LIMITS.maxKeyLength).refine(isWellFormed, wellFormed)
const mapName = z.string().min(1).max(MESSAGE_LIMITS.maxMapNameLength).refine(isWellFormed, wellFormed)
const fieldName = z.string().refine(isWellFormed, wellFormed)
const count = z.number().int().nonnegative()

const fieldEntry = z.tuple([fieldName, value, stamp]) as unknown as z.ZodType<FieldEntry>
const lwwState: z.ZodType<LwwRecordState> = z.object({ fields: z.array(fieldEntry).max(MESSAGE_LIMITS.maxFieldsPerRecord), deleted: stamp.nullable() })
const orState: z.ZodType<OrSetState> = z.object({
  adds: z.array(z.tuple([stamp, value])).max(MESSAGE_LIMITS.maxSetEntries),
  removes: z.array(stamp).max(MESSAGE_LIMITS.maxSetEntries),
}) as unknown as z.ZodType<OrSetState>
const counterState = z.array(z.tuple([replicaId, z.number().nonnegative(), z.number().nonnegative()])).max(MESSAGE_LIMITS.maxSetEntries) as unknown as z.ZodType<CounterState>

/** Schema of a {@link Change}. */
export const changeSchema: z.ZodType<Change> = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('lww'), map: mapName, key, state: lwwState }),
  z.object({ kind: z.literal('or'), map: mapName, key, state: orState }),
  z.object({ kind: z.literal('counter'), map: mapName, key, state: counterState }),
]) as unknown as z.ZodType<Change>

// Predicates are validated by `validatePredicate` (query/predicate.ts) where shapes are accepted.
const predicate = z.custom<Predicate>((v) => typeof v === 'object' && v !== null)
const fieldRef = z.union([z.string(), z.array(z.string()).min(1).max(16)])

/** Schema of a {@link Shape} (its predicate is validated separately by `validateShape`). */
export const shapeSchema: z.ZodType<Shape> = z.object({
  map: mapName,
  where: predicate.optional(),
  fields: z.array(z.string()).max(256).optional(),
  orderBy: z.array(z.tuple([fieldRef, z.enum(['asc', 'desc'])])).max(8).optional(),
  limit: z.number().int().positive().max(1_000_000).optional(),
}) as unknown as z.ZodType<Shape>

/** A Merkle node as exchanged: its path (hex nibbles from the root, `""` is the root), digest and record count. */
export const merkleNodeSchema = z.object({
  path: z.string().max(16),
  /** 64-bit digest as 16 lowercase hex characters. */
  hash: z.string().length(16),
  count,
})
/** A Merkle node as exchanged. */
export type MerkleNodeInfo = z.infer<typeof merkleNodeSchema>

const serializedError = z.object({
  code: z.string().refine(isErrorCode) as unknown as z.ZodType<ErrorCode>,
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
}) as unknown as z.ZodType<SerializedError>

const subId = z.number().int().nonnegative()
const reqId = z.number().int().nonnegative()

// ───────────────────────────── client → relay ─────────────────────────────

/** Opens a session. `token` is the app's JWT (never sent in a URL). */
export const helloSchema = z.object({
  type: z.literal('hello'),
  /** Protocol versions the client speaks. */
  versions: z.array(z.number().int().positive()).min(1).max(16),
  token: z.string().max(16_384).optional(),
  replicaId,
  /** The client's wall clock (ms) when it sent hello, for offset estimation. */
  clientTime: z.number(),
  /** When this replica last completed a sync (ms, relay clock), so the relay can tell it is past the tombstone horizon. */
  lastSyncAt: z.number().optional(),
  /**
   * Flow control: bytes of paced `changes` frames (initial slices) the client can hold
   * unprocessed. The relay keeps at most this much unacknowledged by `credit` in flight.
   * Without it the relay paces by its socket's send buffer only.
   */
  window: z.number().int().min(64 * 1024).max(256 * 1024 * 1024).optional(),
  /**
   * The schema version of each map the app defines a schema for (`createClient({ schemas })`).
   * The relay refuses a session whose versions differ from the ones it enforces with
   * SCHEMA_OUTDATED (see `schema/versions.ts`).
   */
  schemas: z
    .record(mapName, z.number().int().min(1).max(MAX_SCHEMA_VERSION))
    .refine((versions) => Object.keys(versions).length <= MAX_ANNOUNCED_SCHEMAS, { message: `at most ${MAX_ANNOUNCED_SCHEMAS} maps` })
    .optional(),
})

/** Subscribes to a shape (a whole map is `{ map }`). `root` is the client's current Merkle root for it, if any. */
export const subscribeSchema = z.object({
  type: z.literal('subscribe'),
  sub: subId,
  shape: shapeSchema,
  /** The client's root; omitted when it holds nothing, or when it sends a cursor to a relay that welcomed with `cursorWithoutRoot`. */
  root: merkleNodeSchema.optional(),
  /**
   * The cursor the relay gave for this shape in its last `synced` (opaque): the client has
   * applied everything of the shape up to it. The relay replays only what changed since,
   * when its change log still reaches back that far and the caller's rules are unchanged.
   */
  cursor: z.string().min(1).max(128).optional(),
})

/** Ends a subscription; the relay stops sending its changes. */
export const unsubscribeSchema = z.object({ type: z.literal('unsubscribe'), sub: subId })

/** The client's node hashes for paths that differed; the relay answers with `nodes`, `changes`/`push`, then `synced`. */
export const reconcileSchema = z.object({
  type: z.literal('reconcile'),
  sub: subId,
  nodes: z.array(merkleNodeSchema).max(MESSAGE_LIMITS.maxNodesPerFrame),
})

/** The client's full `[key, digest]` list under a small differing path. */
export const entriesSchema = z.object({
  type: z.literal('entries'),
  sub: subId,
  path: z.string().max(16),
  /** `[key, digest]`, or `[key, digest, newest stamp]` so the relay asks for a key only when the client may hold a newer write. */
  entries: z
    .array(z.union([z.tuple([key, z.string().length(16)]), z.tuple([key, z.string().length(16), stamp.nullable()])]))
    .max(MESSAGE_LIMITS.maxKeysPerFrame),
  /** More entries of this path follow in further frames (a path whose list does not fit one frame); the relay answers after the last. */
  more: z.literal(true).optional(),
})

/**
 * A batch of local writes. The relay answers `ack` with one result per change, after
 * commit. Each change is validated on its own ({@link changeSchema}, through `parseChange`),
 * so one malformed change is refused alone and never blocks the changes beside it.
 */
export const opsSchema = z.object({
  type: z.literal('ops'),
  id: reqId,
  changes: z.array(z.custom<Change>((v) => v !== undefined, { message: 'a change is required' })).min(1).max(MESSAGE_LIMITS.maxChangesPerFrame),
})

/** Flow control: the client processed `bytes` of paced `changes` frames; the relay may send that much more. */
export const creditSchema = z.object({ type: z.literal('credit'), bytes: z.number().int().positive().max(2 ** 31) })

/** Keep-alive and clock probe. */
export const pingSchema = z.object({ type: z.literal('ping'), clientTime: z.number() })

// ─────────────────── coordination primitives (topics, locks, processors) ───────────────────
// Declared before the unions that include them; server → client ones are listed in
// `serverMessageSchema` below.
const topicName = z.string().min(1).max(256)
const lockName = z.string().min(1).max(256)

/** Starts receiving a topic's messages (ephemeral pub/sub; nothing is stored). */
export const topicSubscribeSchema = z.object({ type: z.literal('topic-sub'), topic: topicName })
/** Stops receiving a topic. */
export const topicUnsubscribeSchema = z.object({ type: z.literal('topic-unsub'), topic: topicName })
/** Publishes to a topic; the relay answers `topic-ack` with how many other sessions it reached. */
export const topicPublishSchema = z.object({ type: z.literal('topic-pub'), id: reqId, topic: topicName, data: value })
/** Asks for a lock; granted at once or when earlier waiters are done (FIFO), or fails after `wait` ms. */
export const lockAcquireSchema = z.object({
  type: z.literal('lock-acquire'), id: reqId, name: lockName,
  ttl: z.number().int().min(100).max(3_600_000), wait: z.number().int().min(0).max(600_000),
})
/** Extends a held lease by `ttl` ms from now. */
export const lockExtendSchema = z.object({ type: z.literal('lock-extend'), id: reqId, name: lockName, token: z.number().int().positive(), ttl: z.number().int().min(100).max(3_600_000) })
/** Releases a held lease. */
export const lockReleaseSchema = z.object({ type: z.literal('lock-release'), id: reqId, name: lockName, token: z.number().int().positive() })
/** The fencing check: is `token` the lock's current, unexpired lease? */
export const lockCheckSchema = z.object({ type: z.literal('lock-check'), id: reqId, name: lockName, token: z.number().int().nonnegative() })
/** Runs a server-side entry processor on one key, atomically; answered by `invoke-result` or an error. */
export const invokeSchema = z.object({ type: z.literal('invoke'), id: reqId, map: mapName, key, processor: z.string().min(1).max(128), args: value })

/** A topic message from another session (`from` is the publisher's replica id; `seq` orders one publisher's messages). */
export const topicMessageSchema = z.object({ type: z.literal('topic-msg'), topic: topicName, from: replicaId, seq: count, data: value })
/** Answers `topic-pub`. */
export const topicAckSchema = z.object({ type: z.literal('topic-ack'), id: reqId, delivered: count })
/** A lease: answers `lock-acquire` and `lock-extend`. `token` strictly increases per lock, across restarts and relay nodes. */
export const lockGrantedSchema = z.object({ type: z.literal('lock-granted'), id: reqId, name: lockName, token: z.number().int().positive(), expiresAt: z.number() })
/** Answers `lock-release`. */
export const lockReleasedSchema = z.object({ type: z.literal('lock-released'), id: reqId, name: lockName })
/** Answers `lock-check`. */
export const lockStatusSchema = z.object({ type: z.literal('lock-status'), id: reqId, name: lockName, valid: z.boolean(), current: z.number().int().nonnegative() })
/** A held lease ended without release (TTL expired, or the relay dropped it). */
export const lockLostSchema = z.object({ type: z.literal('lock-lost'), name: lockName, token: z.number().int().positive(), reason: z.enum(['expired', 'revoked']) })
/** Answers `invoke`: the processor's result; its write (if any) syncs like any other change. */
export const invokeResultSchema = z.object({ type: z.literal('invoke-result'), id: reqId, result: value })

/** Every message a client may send. */
export const clientMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  subscribeSchema,
  unsubscribeSchema,
  reconcileSchema,
  entriesSchema,
  opsSchema,
  creditSchema,
  pingSchema,
  topicSubscribeSchema,
  topicUnsubscribeSchema,
  topicPublishSchema,
  lockAcquireSchema,
  lockExtendSchema,
  lockReleaseSchema,
  lockCheckSchema,
  invokeSchema,
])

// ───────────────────────────── relay → client ─────────────────────────────

/** Accepts a session. `serverTime` lets the client correct its clock offset. */
export const welcomeSchema = z.object({
  type: z.literal('welcome'),
  version: z.number().int().positive(),
  serverTime: z.number(),
  /** The replica id the relay bound to this session (the client's, checked against the user). */
  replicaId,
  /** Tombstone horizon (ms): a replica away longer re-syncs its shapes from scratch. */
  horizonMs: z.number().nonnegative(),
  /** True when `lastSyncAt` is older than the horizon: drop local shape data and re-subscribe from empty. */
  resync: z.boolean(),
  /** The relay's frame limits: every frame it accepts or sends fits them (see `protocol/limits.ts`). */
  limits: z.object({ maxFrameBytes: z.number().int().min(64 * 1024), maxElements: z.number().int().min(1024) }).optional(),
  /**
   * True when the relay takes a `subscribe` with a cursor and no root: it replays from the
   * cursor, or, when it cannot, answers `subscribed {resume: 'merkle'}` and sends nothing,
   * so the client subscribes again with its root. A client with a cursor then builds no
   * Merkle tree on reconnect. Absent from older relays (which would stream the whole shape).
   */
  cursorWithoutRoot: z.boolean().optional(),
})

/** A failure. With `ref`, it answers that request id; without, it is fatal and the socket closes after it. */
export const errorSchema = z.object({
  type: z.literal('error'),
  error: serializedError,
  ref: reqId.optional(),
  /** Present for subscription errors. */
  sub: subId.optional(),
})

/** The relay's answer to `subscribe`: its root for the shape as the caller may see it. */
export const subscribedSchema = z.object({
  type: z.literal('subscribed'),
  sub: subId,
  /** The relay's root of the shape as the caller may see it (what a Merkle descent starts from). */
  root: merkleNodeSchema,
  /**
   * How the relay brings the client up to date: `cursor` (it replays what changed since the
   * client's cursor), `slice` (it streams the whole shape), `merkle` (the client descends from
   * the roots), `current` (nothing to do). Absent from older relays: compare the roots.
   */
  resume: z.enum(['cursor', 'slice', 'merkle', 'current']).optional(),
})

/** The relay's child nodes for paths whose hashes differed. */
export const nodesSchema = z.object({
  type: z.literal('nodes'),
  sub: subId,
  nodes: z.array(merkleNodeSchema).max(MESSAGE_LIMITS.maxNodesPerFrame * 16),
  /** More nodes answering the same `reconcile` follow (an answer cut to fit the frame limit). */
  more: z.literal(true).optional(),
})

/** Keys the relay lacks or holds differently: the client sends their records as `ops`. */
export const pushSchema = z.object({ type: z.literal('push'), sub: subId, keys: z.array(key).max(MESSAGE_LIMITS.maxKeysPerFrame) })

/**
 * Records for a subscription (initial slice, reconciliation, or live fan-out).
 * `moveOut` keys stopped matching the shape: drop them locally without deleting them for anyone.
 */
export const changesSchema = z.object({
  type: z.literal('changes'),
  sub: subId,
  changes: z.array(changeSchema).max(MESSAGE_LIMITS.maxChangesPerFrame),
  moveOut: z.array(key).max(MESSAGE_LIMITS.maxKeysPerFrame).optional(),
  /** Part of a paced stream (an initial slice): the client answers with `credit` once it has applied it. */
  paced: z.literal(true).optional(),
  /** The newest map sequence number these changes cover (live fan-out): a synced shape's cursor may move to it. */
  seq: z.number().int().nonnegative().optional(),
  /**
   * This frame's number among the `changes` frames of this subscription (1, 2, … from
   * `subscribe`; slice, replay, reconciliation answers and live fan-out alike). A number
   * that skips one means a frame was lost on the way: the client catches the shape up
   * without reconnecting, and keeps no cursor from that sync. Absent from older relays.
   */
  frame: z.number().int().positive().optional(),
})

/** A reconciliation round for `sub` is complete; `root` is the relay's root now. */
export const syncedSchema = z.object({
  type: z.literal('synced'),
  sub: subId,
  /** The relay's root of the view when it had it at hand (a Merkle path loads it), else the empty node: informative only, clients compare roots by subscribing. */
  root: merkleNodeSchema,
  serverTime: z.number(),
  /** The shape is complete as of this cursor: keep it (durably, with the data) and send it in the next `subscribe`. */
  cursor: z.string().min(1).max(128).optional(),
  /**
   * How many `changes` frames of this subscription the relay sent before this message (see
   * `changes.frame`): a client that saw fewer lost one, so it must not keep this cursor.
   * Absent from older relays.
   */
  frames: z.number().int().nonnegative().optional(),
})

/** The client must drop this shape's local data and subscribe again from empty (e.g. past the tombstone horizon). */
export const resyncSchema = z.object({ type: z.literal('resync'), sub: subId, reason: z.string() })

/** Answers `ops`: one result per change (null = committed), in order. */
export const ackSchema = z.object({
  type: z.literal('ack'),
  id: reqId,
  results: z.array(serializedError.nullable()),
  serverTime: z.number(),
})

/** Answers `ping`. */
export const pongSchema = z.object({ type: z.literal('pong'), clientTime: z.number(), serverTime: z.number() })

/** Every message a relay may send. */
export const serverMessageSchema = z.discriminatedUnion('type', [
  welcomeSchema,
  errorSchema,
  subscribedSchema,
  nodesSchema,
  pushSchema,
  changesSchema,
  syncedSchema,
  resyncSchema,
  ackSchema,
  pongSchema,
  topicMessageSchema,
  topicAckSchema,
  lockGrantedSchema,
  lockReleasedSchema,
  lockStatusSchema,
  lockLostSchema,
  invokeResultSchema,
])

export type HelloMessage = z.infer<typeof helloSchema>
export type SubscribeMessage = z.infer<typeof subscribeSchema>
export type UnsubscribeMessage = z.infer<typeof unsubscribeSchema>
export type ReconcileMessage = z.infer<typeof reconcileSchema>
export type EntriesMessage = z.infer<typeof entriesSchema>
export type OpsMessage = z.infer<typeof opsSchema>
export type CreditMessage = z.infer<typeof creditSchema>
export type PingMessage = z.infer<typeof pingSchema>
export type TopicSubscribeMessage = z.infer<typeof topicSubscribeSchema>
export type TopicUnsubscribeMessage = z.infer<typeof topicUnsubscribeSchema>
export type TopicPublishMessage = z.infer<typeof topicPublishSchema>
export type LockAcquireMessage = z.infer<typeof lockAcquireSchema>
export type LockExtendMessage = z.infer<typeof lockExtendSchema>
export type LockReleaseMessage = z.infer<typeof lockReleaseSchema>
export type LockCheckMessage = z.infer<typeof lockCheckSchema>
export type InvokeMessage = z.infer<typeof invokeSchema>
export type ClientMessage = z.infer<typeof clientMessageSchema>

export type WelcomeMessage = z.infer<typeof welcomeSchema>
export type ErrorMessage = z.infer<typeof errorSchema>
export type SubscribedMessage = z.infer<typeof subscribedSchema>
export type NodesMessage = z.infer<typeof nodesSchema>
export type PushMessage = z.infer<typeof pushSchema>
export type ChangesMessage = z.infer<typeof changesSchema>
export type SyncedMessage = z.infer<typeof syncedSchema>
export type ResyncMessage = z.infer<typeof resyncSchema>
export type AckMessage = z.infer<typeof ackSchema>
export type PongMessage = z.infer<typeof pongSchema>
export type TopicMessage = z.infer<typeof topicMessageSchema>
export type TopicAckMessage = z.infer<typeof topicAckSchema>
export type LockGrantedMessage = z.infer<typeof lockGrantedSchema>
export type LockReleasedMessage = z.infer<typeof lockReleasedSchema>
export type LockStatusMessage = z.infer<typeof lockStatusSchema>
export type LockLostMessage = z.infer<typeof lockLostSchema>
export type InvokeResultMessage = z.infer<typeof invokeResultSchema>
export type ServerMessage = z.infer<typeof serverMessageSchema>

/** Every message type name. */
export type MessageType = ClientMessage['type'] | ServerMessage['type']

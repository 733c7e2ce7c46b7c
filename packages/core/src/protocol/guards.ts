/**
 * Type guards for every protocol message, built on the zod schemas in `messages.ts`, and
 * protocol version negotiation. A guard checks the whole message, not just its `type`,
 * so after `isOps(msg)` every field of `msg` can be trusted structurally.
 */
import type { z } from 'zod'
import { InvalidMessageError, ProtocolVersionError } from '../errors'
import { formatIssues } from './codec'
import {
  PROTOCOL_VERSIONS,
  topicSubscribeSchema,
  topicUnsubscribeSchema,
  topicPublishSchema,
  lockAcquireSchema,
  lockExtendSchema,
  lockReleaseSchema,
  lockCheckSchema,
  invokeSchema,
  topicMessageSchema,
  topicAckSchema,
  lockGrantedSchema,
  lockReleasedSchema,
  lockStatusSchema,
  lockLostSchema,
  invokeResultSchema,
  type TopicSubscribeMessage,
  type TopicUnsubscribeMessage,
  type TopicPublishMessage,
  type LockAcquireMessage,
  type LockExtendMessage,
  type LockReleaseMessage,
  type LockCheckMessage,
  type InvokeMessage,
  type TopicMessage,
  type TopicAckMessage,
  type LockGrantedMessage,
  type LockReleasedMessage,
  type LockStatusMessage,
  type LockLostMessage,
  type InvokeResultMessage,
  ackSchema,
  changesSchema,
  clientMessageSchema,
  entriesSchema,
  errorSchema,
  helloSchema,
  nodesSchema,
  opsSchema,
  creditSchema,
  pingSchema,
  pongSchema,
  pushSchema,
  reconcileSchema,
  resyncSchema,
  serverMessageSchema,
  subscribeSchema,
  subscribedSchema,
  syncedSchema,
  unsubscribeSchema,
  welcomeSchema,
  type AckMessage,
  type CreditMessage,
  type ChangesMessage,
  type ClientMessage,
  type EntriesMessage,
  type ErrorMessage,
  type HelloMessage,
  type NodesMessage,
  type OpsMessage,
  type PingMessage,
  type PongMessage,
  type PushMessage,
  type ReconcileMessage,
  type ResyncMessage,
  type ServerMessage,
  type SubscribeMessage,
  type SubscribedMessage,
  type SyncedMessage,
  type UnsubscribeMessage,
  type WelcomeMessage,
} from './messages'

function guard<T>(schema: z.ZodType<T>): (message: unknown) => message is T {
  return (message: unknown): message is T => schema.safeParse(message).success
}

/** True when `message` is a valid `hello` (client opens a session). */
export const isHello: (message: unknown) => message is HelloMessage = guard(helloSchema)
/** True when `message` is a valid `subscribe`. */
export const isSubscribe: (message: unknown) => message is SubscribeMessage = guard(subscribeSchema)
/** True when `message` is a valid `unsubscribe`. */
export const isUnsubscribe: (message: unknown) => message is UnsubscribeMessage = guard(unsubscribeSchema)
/** True when `message` is a valid `reconcile`. */
export const isReconcile: (message: unknown) => message is ReconcileMessage = guard(reconcileSchema)
/** True when `message` is a valid `entries`. */
export const isEntries: (message: unknown) => message is EntriesMessage = guard(entriesSchema)
/** True when `message` is a valid `ops` (a batch of local writes). */
export const isOps: (message: unknown) => message is OpsMessage = guard(opsSchema)
/** True for a valid `credit` message. */
export const isCredit: (message: unknown) => message is CreditMessage = guard(creditSchema)
/** True when `message` is a valid `ping`. */
export const isPing: (message: unknown) => message is PingMessage = guard(pingSchema)
/** True when `message` is any valid client → relay message. */
export const isClientMessage: (message: unknown) => message is ClientMessage = guard(clientMessageSchema)

/** True when `message` is a valid `welcome` (relay accepts a session). */
export const isWelcome: (message: unknown) => message is WelcomeMessage = guard(welcomeSchema)
/** True when `message` is a valid `error`. */
export const isErrorMessage: (message: unknown) => message is ErrorMessage = guard(errorSchema)
/** True when `message` is a valid `subscribed`. */
export const isSubscribed: (message: unknown) => message is SubscribedMessage = guard(subscribedSchema)
/** True when `message` is a valid `nodes`. */
export const isNodes: (message: unknown) => message is NodesMessage = guard(nodesSchema)
/** True when `message` is a valid `push`. */
export const isPush: (message: unknown) => message is PushMessage = guard(pushSchema)
/** True when `message` is a valid `changes`. */
export const isChanges: (message: unknown) => message is ChangesMessage = guard(changesSchema)
/** True when `message` is a valid `synced`. */
export const isSynced: (message: unknown) => message is SyncedMessage = guard(syncedSchema)
/** True when `message` is a valid `resync`. */
export const isResync: (message: unknown) => message is ResyncMessage = guard(resyncSchema)
/** True when `message` is a valid `ack`. */
export const isAck: (message: unknown) => message is AckMessage = guard(ackSchema)
/** True when `message` is a valid `pong`. */
export const isPong: (message: unknown) => message is PongMessage = guard(pongSchema)
/** True when `message` is a valid `topic-sub`. */
export const isTopicSubscribe: (message: unknown) => message is TopicSubscribeMessage = guard(topicSubscribeSchema)
/** True when `message` is a valid `topic-unsub`. */
export const isTopicUnsubscribe: (message: unknown) => message is TopicUnsubscribeMessage = guard(topicUnsubscribeSchema)
/** True when `message` is a valid `topic-pub`. */
export const isTopicPublish: (message: unknown) => message is TopicPublishMessage = guard(topicPublishSchema)
/** True when `message` is a valid `lock-acquire`. */
export const isLockAcquire: (message: unknown) => message is LockAcquireMessage = guard(lockAcquireSchema)
/** True when `message` is a valid `lock-extend`. */
export const isLockExtend: (message: unknown) => message is LockExtendMessage = guard(lockExtendSchema)
/** True when `message` is a valid `lock-release`. */
export const isLockRelease: (message: unknown) => message is LockReleaseMessage = guard(lockReleaseSchema)
/** True when `message` is a valid `lock-check`. */
export const isLockCheck: (message: unknown) => message is LockCheckMessage = guard(lockCheckSchema)
/** True when `message` is a valid `invoke`. */
export const isInvoke: (message: unknown) => message is InvokeMessage = guard(invokeSchema)
/** True when `message` is a valid `topic-msg`. */
export const isTopicMessage: (message: unknown) => message is TopicMessage = guard(topicMessageSchema)
/** True when `message` is a valid `topic-ack`. */
export const isTopicAck: (message: unknown) => message is TopicAckMessage = guard(topicAckSchema)
/** True when `message` is a valid `lock-granted`. */
export const isLockGranted: (message: unknown) => message is LockGrantedMessage = guard(lockGrantedSchema)
/** True when `message` is a valid `lock-released`. */
export const isLockReleased: (message: unknown) => message is LockReleasedMessage = guard(lockReleasedSchema)
/** True when `message` is a valid `lock-status`. */
export const isLockStatus: (message: unknown) => message is LockStatusMessage = guard(lockStatusSchema)
/** True when `message` is a valid `lock-lost`. */
export const isLockLost: (message: unknown) => message is LockLostMessage = guard(lockLostSchema)
/** True when `message` is a valid `invoke-result`. */
export const isInvokeResult: (message: unknown) => message is InvokeResultMessage = guard(invokeResultSchema)
/** True when `message` is any valid relay → client message. */
export const isServerMessage: (message: unknown) => message is ServerMessage = guard(serverMessageSchema)

/**
 * Validates already-decoded data (e.g. a JSON body of `POST /sync`) as a client message.
 * Throws {@link InvalidMessageError} with `details.issues` when it is not one.
 */
export function parseClientMessage(data: unknown): ClientMessage {
  const result = clientMessageSchema.safeParse(data)
  if (result.success) return result.data
  const issues = formatIssues(result.error.issues)
  throw new InvalidMessageError(`Not a valid client message (${issues.join('; ')})`, { issues })
}

/**
 * Validates already-decoded data (e.g. a server-sent event) as a server message.
 * Throws {@link InvalidMessageError} with `details.issues` when it is not one.
 */
export function parseServerMessage(data: unknown): ServerMessage {
  const result = serverMessageSchema.safeParse(data)
  if (result.success) return result.data
  const issues = formatIssues(result.error.issues)
  throw new InvalidMessageError(`Not a valid server message (${issues.join('; ')})`, { issues })
}

/**
 * The highest protocol version both sides speak. Throws {@link ProtocolVersionError}
 * (with `details.client` and `details.supported`) when they share none.
 */
export function negotiateVersion(clientVersions: readonly number[], serverVersions: readonly number[] = PROTOCOL_VERSIONS): number {
  const server = new Set(serverVersions)
  let best = -Infinity
  for (const version of clientVersions) if (server.has(version) && version > best) best = version
  if (best !== -Infinity) return best
  const client = [...clientVersions].sort((a, b) => a - b)
  const supported = [...serverVersions].sort((a, b) => a - b)
  const newestClient = client[client.length - 1]
  const newestServer = supported[supported.length - 1]
  const advice =
    newestClient !== undefined && newestServer !== undefined && newestClient < newestServer
      ? 'upgrade the client (reload the app) to a build that speaks a newer version'
      : newestClient !== undefined && newestServer !== undefined && newestClient > newestServer
        ? 'upgrade the relay to a build that speaks a newer version'
        : 'upgrade the client or the relay so they share one'
  throw new ProtocolVersionError(
    `No common protocol version: the client speaks [${client.join(', ')}], the relay speaks [${supported.join(', ')}]; ${advice}`,
    { client, supported },
  )
}

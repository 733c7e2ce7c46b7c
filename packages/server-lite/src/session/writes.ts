/**
 * A session's `ops`: each change is validated on its own (`parseChange`), turned into a
 * store request by the one write pipeline (`sync/write-pipeline.ts`), and stored with the
 * other writes of the same event turn in one transaction. The ack carries one result per
 * change, sent once the transaction is durable; a store failure fails every change of the
 * batch with a retryable STORE_FAILED.
 */
import {
  isOutpostError,
  parseChange,
  serializeError,
  type Change,
  type OpsMessage,
  type OutpostError,
  type SerializedError,
  type ServerMessage,
} from '@outpost/core'
import type { MapAccess } from '../auth/rules'
import type { RelayContext } from '../relay-context'
import { writeRequest, type PipelineRequest } from '../sync/write-pipeline'

/** An `ops` batch handed to the store: `settled` once its ack has been sent. Not a promise itself, so returning it from an async handler does not wait for it. */
export interface PendingAck {
  readonly settled: Promise<void>
}

/** What the write path needs from its session. */
export interface WritesHost {
  readonly context: RelayContext
  /** The session (fan-out skips echoing a write back to its own writer). */
  readonly owner: object
  readonly replicaId: string
  readonly isOpen: boolean
  send(message: ServerMessage): void
  access(map: string): MapAccess
}

/** Handles an `ops` batch (already rate-checked); see the module comment. */
export async function handleOps(host: WritesHost, message: OpsMessage): Promise<PendingAck | undefined> {
  const context = host.context
  const parsed = message.changes.map((raw): Change | OutpostError => {
    try {
      return parseChange(raw)
    } catch (error) {
      return error as OutpostError
    }
  })
  const valid = parsed.filter((c): c is Change => !isOutpostError(c))
  // Entry processors on these keys run first (atomic read-modify-write); checked again after each wait.
  for (let busy = context.functions.busy(valid); busy !== undefined; busy = context.functions.busy(valid)) await busy
  const maps = new Map<string, Awaited<ReturnType<typeof context.sync.catalog.get>>>()
  for (const change of valid) if (!maps.has(change.map)) maps.set(change.map, await context.sync.catalog.get(change.map))
  if (!host.isOpen) return undefined

  const pipeline = context.pipeline
  const writer = { replicaId: host.replicaId, access: (map: string) => host.access(map) }
  const results: (SerializedError | null)[] = []
  const requests: PipelineRequest[] = []
  const slots: number[] = []
  for (const change of parsed) {
    try {
      if (isOutpostError(change)) throw change
      requests.push(writeRequest(change, writer, maps.get(change.map)?.kind, pipeline))
      slots.push(results.length)
      results.push(null)
    } catch (error) {
      results.push(refusal(host, error))
    }
  }
  const ack = (): void => {
    context.metrics.acks.inc()
    host.send({ type: 'ack', id: message.id, results, serverTime: context.now() })
  }
  if (requests.length === 0) {
    ack()
    return undefined
  }
  const settled = context.sync.write(requests, host.owner).then(
    (outcomes) => {
      outcomes.forEach((outcome, i) => {
        if (outcome.status === 'refused') results[slots[i] as number] = refusal(host, outcome.error)
      })
      ack()
    },
    (error: unknown) => {
      const failed = serializeError(error)
      for (const slot of slots) results[slot] = failed
      host.send({ type: 'ack', id: message.id, results, serverTime: context.now() })
    },
  )
  return { settled }
}

function refusal(host: WritesHost, error: unknown): SerializedError {
  if (!isOutpostError(error)) host.context.logger.error({ err: error }, 'unexpected error while applying a change')
  const serialized = serializeError(error)
  host.context.metrics.errors.inc({ code: serialized.code })
  return serialized
}

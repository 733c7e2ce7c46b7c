/**
 * A session's `ops`, as {@link Work} for the fair scheduler: the batch is handled in
 * pieces of at most `pieceUnits` changes. Each piece's changes are validated on their own
 * (`parseChange`), turned into store requests by the one write pipeline
 * (`sync/write-pipeline.ts`) and handed to the store, which commits them with other
 * connections' pieces in one transaction (group commit). Between pieces other connections
 * get their turn, so a 2,000-change batch never holds the relay for more than one piece.
 *
 * The ack carries one result per change and is sent once every piece is durable, after the
 * acks of the connection's earlier batches (acks go out in the order the batches came). A
 * store failure fails the changes of the pieces it hit with a retryable STORE_FAILED.
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
import type { StepCost, TrackInFlight, Work } from '../fair-scheduler'
import type { RelayContext } from '../relay-context'
import { writeRequest, type PipelineRequest } from '../sync/write-pipeline'

/** What the write path needs from its session. */
export interface WritesHost {
  readonly context: RelayContext
  /** The session (fan-out skips echoing a write back to its own writer). */
  readonly owner: object
  readonly replicaId: string
  readonly isOpen: boolean
  send(message: ServerMessage): void
  access(map: string): MapAccess
  /** Runs `send` once `ready` has settled and every ack queued before it was sent. */
  inOrder(ready: Promise<unknown>, send: () => void): void
}

/** An `ops` batch (already rate-checked) as scheduler work; see the module comment. */
export class OpsWork implements Work {
  readonly #host: WritesHost
  readonly #id: number
  /** The decoded batch; let go once its last piece is handed to the store (the ack needs only the results). */
  #changes: OpsMessage['changes']
  readonly #piece: number
  readonly #results: (SerializedError | null)[]
  readonly #pieces: Promise<void>[] = []
  #next = 0

  constructor(host: WritesHost, message: OpsMessage, pieceUnits: number) {
    this.#host = host
    this.#id = message.id
    this.#changes = message.changes
    this.#piece = Math.max(1, pieceUnits)
    this.#results = new Array<SerializedError | null>(message.changes.length).fill(null)
  }

  next(): StepCost {
    const count = Math.max(1, Math.min(this.#piece, this.#changes.length - this.#next))
    return { weight: count, units: count }
  }

  step(track: TrackInFlight): boolean | Promise<boolean> {
    const from = this.#next
    const to = Math.min(from + this.#piece, this.#changes.length)
    this.#next = to
    const parsed = this.#changes.slice(from, to).map((raw): Change | OutpostError => {
      try {
        return parseChange(raw)
      } catch (error) {
        return error as OutpostError
      }
    })
    const context = this.#host.context
    const valid = parsed.filter((c): c is Change => !isOutpostError(c))
    const busy = context.functions.busy(valid)
    const missing = [...new Set(valid.map((c) => c.map))].filter((map) => context.sync.catalog.peek(map) === undefined)
    // Usually synchronous: an entry processor running on one of these keys, or a map not loaded yet, makes it wait.
    if (busy === undefined && missing.length === 0) return this.#handOver(from, parsed, track)
    return (async () => {
      // Entry processors on these keys run first (atomic read-modify-write); checked again after each wait.
      for (let wait = busy; wait !== undefined; wait = context.functions.busy(valid)) await wait
      for (const map of missing) await context.sync.catalog.get(map)
      return this.#handOver(from, parsed, track)
    })()
  }

  /** Builds the piece's store requests and hands them to the store; returns true while pieces remain. */
  #handOver(from: number, parsed: readonly (Change | OutpostError)[], track: TrackInFlight): boolean {
    const host = this.#host
    if (!host.isOpen) return false
    const context = host.context
    const writer = { replicaId: host.replicaId, access: (map: string) => host.access(map) }
    const requests: PipelineRequest[] = []
    const slots: number[] = []
    parsed.forEach((change, i) => {
      try {
        if (isOutpostError(change)) throw change
        requests.push(writeRequest(change, writer, context.sync.catalog.peek(change.map)?.kind, context.pipeline))
        slots.push(from + i)
      } catch (error) {
        this.#results[from + i] = refusal(host, error)
      }
    })
    if (requests.length > 0) {
      const results = this.#results
      const committed = context.sync.write(requests, host.owner).then(
        (outcomes) => {
          outcomes.forEach((outcome, i) => {
            if (outcome.status === 'refused') results[slots[i] as number] = refusal(host, outcome.error)
          })
        },
        (error: unknown) => {
          const failed = serializeError(error)
          for (const slot of slots) results[slot] = failed
        },
      )
      track(requests.length, committed)
      this.#pieces.push(committed)
    }
    if (this.#next < this.#changes.length) return true
    this.#changes = []
    const id = this.#id
    host.inOrder(Promise.all(this.#pieces), () => {
      context.metrics.acks.inc()
      host.send({ type: 'ack', id, results: this.#results, serverTime: context.now() })
    })
    return false
  }
}

function refusal(host: WritesHost, error: unknown): SerializedError {
  if (!isOutpostError(error)) host.context.logger.error({ err: error }, 'unexpected error while applying a change')
  const serialized = serializeError(error)
  host.context.metrics.errors.inc({ code: serialized.code })
  return serialized
}

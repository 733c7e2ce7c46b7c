/**
 * The client side of one subscription, as the worker runs it, reduced for tests: local
 * LWW states of a shape, their Merkle tree (projected digests), and the reconciliation
 * descent (core's `ReconcileInitiator`, as the worker runs it). Counts what was transferred.
 */
import {
  CrdtMap,
  MerkleTree,
  ReconcileInitiator,
  lwwDigest,
  lwwView,
  projectLww,
  type ChangesMessage,
  type LwwRecordState,
  type NodesMessage,
  type ReconcileStep,
  type RecordValue,
  type ServerMessage,
  type Shape,
  type SubscribedMessage,
  type SyncedMessage,
} from '@outpost/core'
import type { TestClient } from './client'

let subCounter = 100

/** What one sync transferred. */
export interface SyncReport {
  /** Records received in `changes` frames. */
  readonly received: number
  /** `changes` frames received. */
  readonly frames: number
  /** Keys the relay asked for with `push`. */
  readonly pushed: readonly string[]
  /** Error codes the relay answered our push replies with (null = accepted), in order. */
  readonly pushResults: readonly (string | null)[]
  /** Requests sent (reconcile + entries). */
  readonly rounds: number
}

/** Local replica of one shape; see the module comment. */
export class LocalShape {
  readonly shape: Shape
  readonly states = CrdtMap.of('lww')
  readonly tree = new MerkleTree()
  sub = ++subCounter

  constructor(shape: Shape) {
    this.shape = shape
  }

  /** Merges a state locally (a local write or a received record). */
  apply(key: string, state: LwwRecordState): void {
    const merged = this.states.apply(key, this.shape.fields === undefined ? state : projectLww(state, this.shape.fields))
    if (merged !== undefined) this.tree.set(key, lwwDigest(merged, this.shape.fields))
  }

  /** Drops a key locally (move-out). */
  drop(key: string): void {
    this.states.delete(key)
    this.tree.delete(key)
  }

  /** The visible record of `key`. */
  view(key: string): RecordValue | undefined {
    const state = this.states.get(key)
    return state === undefined ? undefined : lwwView(state)
  }

  /** Applies a `changes` message for this subscription; returns the number of records. */
  absorb(message: ChangesMessage): number {
    for (const change of message.changes) if (change.kind === 'lww') this.apply(change.key, change.state)
    for (const key of message.moveOut ?? []) this.drop(key)
    return message.changes.length
  }

  /**
   * Subscribes (with the local root when `withRoot`) and runs reconciliation to the end,
   * answering pushes with `ops`. Returns what was transferred.
   */
  async sync(client: TestClient, withRoot = true): Promise<SyncReport> {
    this.sub = ++subCounter
    const sub = this.sub
    const start = client.messages.length
    let received = 0
    let frames = 0
    let rounds = 0
    const pushed: string[] = []
    const pushResults: (string | null)[] = []
    const mine = (m: ServerMessage): boolean => 'sub' in m && m.sub === sub
    // Consumes messages for this sub in order, applying changes and answering pushes, until `until` matches.
    let cursor = start
    const consume = async <T extends ServerMessage>(until: (m: ServerMessage) => boolean): Promise<T> => {
      for (;;) {
        await client.waitAny(() => client.messages.slice(cursor).some((m) => mine(m) && (until(m) || m.type === 'error')))
        while (cursor < client.messages.length) {
          const m = client.messages[cursor++] as ServerMessage
          if (!mine(m)) continue
          if (m.type === 'error') throw new Error(`subscription error: ${JSON.stringify(m.error)}`)
          if (m.type === 'changes') {
            frames++
            received += this.absorb(m)
          }
          if (m.type === 'push') {
            pushed.push(...m.keys)
            const changes = m.keys.flatMap((key) => {
              const state = this.states.get(key)
              return state === undefined ? [] : [{ kind: 'lww' as const, map: this.shape.map, key, state }]
            })
            if (changes.length > 0) pushResults.push(...(await client.ops(changes)).results.map((r) => r?.code ?? null))
          }
          if (until(m)) return m as T
        }
      }
    }
    const localRoot = this.tree.root()
    client.send({ type: 'subscribe', sub, shape: this.shape, ...(withRoot ? { root: localRoot } : {}) })
    const subscribed = await consume<SubscribedMessage>((m) => m.type === 'subscribed')
    if (!withRoot || localRoot.count === 0 || subscribed.root.hash === localRoot.hash) {
      await consume<SyncedMessage>((m) => m.type === 'synced')
      return { received, frames, pushed, pushResults, rounds }
    }
    // Core's descent, as the worker runs it: each step answered before the next round.
    const initiator = new ReconcileInitiator(this.tree)
    let steps: ReconcileStep[] = initiator.start(subscribed.root)
    while (steps.length > 0) {
      const next: ReconcileStep[] = []
      for (const step of steps) {
        rounds++
        if (step.type === 'entries') {
          client.send({ type: 'entries', sub, path: step.path, entries: this.tree.entries(step.path) })
          await consume<SyncedMessage>((m) => m.type === 'synced')
          continue
        }
        client.send({ type: 'reconcile', sub, nodes: [...step.nodes] })
        const nodes = await consume<NodesMessage>((m) => m.type === 'nodes')
        next.push(...initiator.onNodes(step.nodes.map((n) => n.path), nodes.nodes))
      }
      steps = next
    }
    return { received, frames, pushed, pushResults, rounds }
  }
}

/**
 * The relay's side of the Merkle resume path (see `subscriptions.ts`): answers a client's
 * `reconcile` with the children of its differing nodes and its `entries` with records,
 * `push` requests and move-outs, using core's responder (`answerReconcile`,
 * `compareEntries` in `sync/reconcile.ts`). Each `entries` answer ends with `synced`.
 */
import {
  InvalidMessageError,
  QueryError,
  answerReconcile,
  compareEntries,
  itemBudget,
  keySize,
  leafPathOf,
  lwwMaxStamp,
  packBySize,
  serializeError,
  MESSAGE_LIMITS,
  type CollectionKind,
  type CrdtState,
  type EntriesMessage,
  type LwwRecordState,
  type MerkleNodeInfo,
  type ReconcileEntry,
  type ReconcileMessage,
  type Stamp,
  type SyncRecord,
  type WireLimits,
} from '@outpost/core'
import type { Subscription, SubscriptionOut } from './subscription'

/** Records read per page of an entries answer. */
const SCAN_PAGE = 2_000

/** One session's answers to Merkle descents; see the module comment. */
export class MerkleAnswers {
  readonly #out: SubscriptionOut
  readonly #limits: () => WireLimits
  readonly #lookup: (id: number) => Subscription | undefined
  /** `entries` lists of one path arriving in several frames (`more`), by `sub \0 path`. */
  readonly #partialEntries = new Map<string, EntriesMessage['entries'][number][]>()

  constructor(out: SubscriptionOut, limits: () => WireLimits, lookup: (id: number) => Subscription | undefined) {
    this.#out = out
    this.#limits = limits
    this.#lookup = lookup
  }

  #subscription(id: number): Subscription | undefined {
    const sub = this.#lookup(id)
    if (sub === undefined) this.#out.host.send({ type: 'error', sub: id, error: serializeError(new QueryError(`No subscription ${id}; subscribe first`)) })
    return sub
  }

  /** Answers the client's differing nodes with the relay's non-empty children of each, in frames that fit (`more` on all but the last). */
  async reconcile(message: ReconcileMessage): Promise<void> {
    const sub = this.#subscription(message.sub)
    if (sub === undefined) return
    const host = this.#out.host
    host.context.metrics.reconcileRounds.inc()
    const nodes = answerReconcile(await this.#out.tree(sub), message.nodes)
    const batches = [...packBySize(nodes, nodeSize, itemBudget(this.#limits()), MESSAGE_LIMITS.maxNodesPerFrame * 16)]
    if (batches.length === 0) batches.push([])
    batches.forEach((batch, i) => host.send({ type: 'nodes', sub: message.sub, nodes: batch, ...(i < batches.length - 1 ? { more: true as const } : {}) }))
  }

  /** Settles a small differing subtree: records the client lacks, keys it should upload or drop, then `synced`. */
  async entries(message: EntriesMessage): Promise<void> {
    const sub = this.#subscription(message.sub)
    if (sub === undefined) return
    const host = this.#out.host
    const path = /^[0-9a-f]*$/.test(message.path) ? message.path : '\u0000'
    const tree = await this.#out.tree(sub)
    // Only keys that really belong under `path` count: a client cannot probe other buckets through it.
    const part = message.entries.filter(([key]) => leafPathOf(key, tree.depth).startsWith(path))
    const partialKey = `${message.sub}\u0000${path}`
    const gathered = this.#partialEntries.get(partialKey)
    const remote = gathered === undefined ? part : [...gathered, ...part]
    if (message.more === true) {
      // A list cut into several frames: answer once its last frame is in (bounded like one frame's list).
      if (remote.length > MESSAGE_LIMITS.maxKeysPerFrame) {
        this.#partialEntries.delete(partialKey)
        host.send({ type: 'error', sub: message.sub, error: serializeError(new InvalidMessageError(`An entries list of more than ${MESSAGE_LIMITS.maxKeysPerFrame} keys for one path; reconcile deeper paths instead`)) })
        return
      }
      this.#partialEntries.set(partialKey, remote)
      return
    }
    this.#partialEntries.delete(partialKey)
    host.context.metrics.reconcileRounds.inc()
    const store = host.context.sync.store
    const local = await this.#memberRecords(sub, path)
    if (sub.closed) return
    const localEntries: ReconcileEntry[] = [...local.values()].map((r) => [r.key, sub.view.digest(r.state), newestStamp(sub.view.kind, r.state)])
    const remoteEntries: ReconcileEntry[] = remote.map((e) => [e[0], e[1], (e[2] ?? null) as Stamp | null])
    const answer = compareEntries(localEntries, remoteEntries)
    const send = answer.send.flatMap((key) => {
      const record = local.get(key)
      return record === undefined ? [] : [{ key, state: sub.view.project(record.state) }]
    })
    const push = [...answer.ask]
    const moveOut: string[] = []
    if (answer.stray.length > 0) {
      const held = await store.getRecords(sub.map, answer.stray)
      answer.stray.forEach((key, i) => {
        // The relay holds it but this caller's view does not (it left the shape, or the caller
        // may no longer see it), or the caller may not write it: drop it from the device.
        if (held[i] !== undefined || !sub.access.keyAllowed(key)) moveOut.push(key)
        // The relay has never heard of it: the device may upload its own writes.
        else push.push(key)
      })
    }
    if (sub.closed) return
    this.#out.sendChanges(sub, send, moveOut)
    for (const keys of packBySize(push, keySize, itemBudget(this.#limits()), MESSAGE_LIMITS.maxKeysPerFrame)) host.send({ type: 'push', sub: message.sub, keys })
    // Each answer carries the subscription's cursor: once the client's descent has no answer
    // outstanding it holds every change up to the join (later ones arrive live), so the
    // Merkle path ends with a cursor like the others.
    await this.#out.synced(sub, sub.head)
  }

  /** The view's members under a Merkle path, with their stored records. */
  async #memberRecords(sub: Subscription, path: string): Promise<Map<string, SyncRecord>> {
    const store = this.#out.host.context.sync.store
    const out = new Map<string, SyncRecord>()
    if (sub.view.plain) {
      let after: string | undefined
      for (;;) {
        const page = await store.scanRecords(sub.map, { within: path, limit: SCAN_PAGE, ...(after === undefined ? {} : { after }) })
        for (const record of page) out.set(record.key, record)
        if (page.length < SCAN_PAGE) return out
        after = (page[page.length - 1] as SyncRecord).key
      }
    }
    const keys = (sub.view.tree?.entries(path) ?? []).map(([key]) => key)
    const records = await store.getRecords(sub.map, keys)
    records.forEach((record, i) => {
      if (record !== undefined && sub.view.isMember(keys[i] as string, record.state)) out.set(record.key, record)
    })
    return out
  }
}

/** The newest stamp of a state (LWW registers and tombstone, OR tags), or null. */
function newestStamp(kind: CollectionKind, state: CrdtState): Stamp | null {
  if (kind === 'lww') return lwwMaxStamp(state as LwwRecordState)
  if (kind === 'or') {
    let newest: Stamp | null = null
    for (const [tag] of (state as { adds: readonly (readonly [Stamp, unknown])[] }).adds) if (newest === null || tag > newest) newest = tag
    for (const tag of (state as { removes: readonly Stamp[] }).removes) if (newest === null || tag > newest) newest = tag
    return newest
  }
  return null
}

/** The encoded size of one Merkle node info in a `nodes` list. */
function nodeSize(node: MerkleNodeInfo): { bytes: number; elements: number } {
  // fixmap(3) + "path" + path string + "hash" + 16-char string + "count" + uint up to 5 bytes.
  return { bytes: 1 + 5 + 1 + node.path.length + 5 + 17 + 6 + 5, elements: 3 }
}

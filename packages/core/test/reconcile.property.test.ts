/**
 * The reconciliation descent (core's `sync/reconcile.ts`), initiator against responder, on
 * random trees. Seeded (OUTPOST_SEED replays; OUTPOST_PROPERTY_RUNS sets runs).
 *
 * Laws:
 *  - the descent reports exactly the keys that differ: every key held by one side only or
 *    with different digests is sent, asked for or a stray, and no other key is;
 *  - after the responder sends what it holds and strays are uploaded, both roots are equal;
 *  - a key is asked for only when the initiator's newest stamp is newer than the responder's;
 *  - equal trees need no step at all, and traffic is bounded by the differences: for k
 *    differing keys, at most k entries exchanges plus one reconcile per level (when
 *    `reconcile` steps are not cut); every node asked for differs, so at most k per level;
 *  - with `maxNodesPerStep` m, no `reconcile` step carries more than m nodes, and the laws
 *    above hold whatever the order in which the responder answers the steps.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MerkleTree } from '../src/merkle/merkle-tree'
import { ReconcileInitiator, answerReconcile, compareEntries, type ReconcileEntry } from '../src/sync/reconcile'
import type { Stamp } from '../src/types'

const SEED = process.env['OUTPOST_SEED'] !== undefined ? Number(process.env['OUTPOST_SEED']) : Math.floor(Math.random() * 2 ** 31)
const RUNS = Math.max(1, Math.floor(Number(process.env["OUTPOST_PROPERTY_RUNS"] ?? 10_000) / 50))

function check<T>(property: fc.IProperty<T>): void {
  const result = fc.check(property, { seed: SEED, numRuns: RUNS })
  if (result.failed) throw new Error(`property failed; replay with OUTPOST_SEED=${SEED}\n${fc.defaultReportMessage(result)}\n${String(result.errorInstance)}`)
}

interface Side {
  readonly tree: MerkleTree
  readonly newest: Map<string, Stamp>
}

const digestOf = (n: number): string => n.toString(16).padStart(16, '0')
const stampOf = (n: number): Stamp => `${n.toString(36).padStart(10, '0')}-0000-r` as Stamp

/** A pair of trees: a shared base, then each side changes some keys (k small, N up to a few thousand). */
const pair = fc
  .record({
    base: fc.integer({ min: 0, max: 1_500 }),
    changes: fc.array(fc.record({ key: fc.integer({ min: 0, max: 4_000 }), side: fc.constantFrom('a', 'b', 'both'), digest: fc.integer({ min: 1, max: 1e9 }), stamp: fc.integer({ min: 1, max: 1e6 }) }), { maxLength: 40 }),
    depth: fc.constantFrom(2, 3, 4),
    maxNodes: fc.constantFrom(Number.POSITIVE_INFINITY, 1, 2, 5),
    /** Which pending step the responder answers next (indices taken modulo the queue's length). */
    order: fc.array(fc.nat(), { minLength: 1, maxLength: 16 }),
  })
  .map(({ base, changes, depth, maxNodes, order }) => {
    const a: Side = { tree: new MerkleTree({ depth }), newest: new Map() }
    const b: Side = { tree: new MerkleTree({ depth }), newest: new Map() }
    for (let i = 0; i < base; i++) {
      for (const side of [a, b]) {
        side.tree.set(`k${i}`, digestOf(i + 1))
        side.newest.set(`k${i}`, stampOf(i + 1))
      }
    }
    for (const c of changes) {
      const targets = c.side === 'both' ? [a, b] : c.side === 'a' ? [a] : [b]
      targets.forEach((side, j) => {
        side.tree.set(`k${c.key}`, digestOf(c.digest + j))
        side.newest.set(`k${c.key}`, stampOf(2_000_000 + c.stamp + j))
      })
    }
    return { a, b, maxNodes, order }
  })

function entriesOf(side: Side, path: string): ReconcileEntry[] {
  return side.tree.entries(path).map(([key, digest]) => [key, digest, side.newest.get(key) ?? null] as const)
}

interface Run {
  send: Set<string>
  ask: Set<string>
  stray: Set<string>
  entries: number
  reconciles: number
  /** Nodes asked for in all `reconcile` steps. */
  asked: number
  /** Most nodes in one `reconcile` step. */
  widest: number
}

/** Runs the whole descent, answering pending steps in the order `order` picks; returns what the responder (b) learnt and how much traffic it took. */
function run(a: Side, b: Side, maxNodes = Number.POSITIVE_INFINITY, order: readonly number[] = [0]): Run {
  const initiator = new ReconcileInitiator(a.tree, { maxNodesPerStep: maxNodes })
  const out: Run = { send: new Set(), ask: new Set(), stray: new Set(), entries: 0, reconciles: 0, asked: 0, widest: 0 }
  const pending = initiator.start(b.tree.root())
  for (let turn = 0; pending.length > 0; turn++) {
    const [step] = pending.splice((order[turn % order.length] as number) % pending.length, 1)
    if (step === undefined) break
    if (step.type === 'entries') {
      out.entries++
      const answer = compareEntries(entriesOf(b, step.path), entriesOf(a, step.path))
      for (const k of answer.send) out.send.add(k)
      for (const k of answer.ask) out.ask.add(k)
      for (const k of answer.stray) out.stray.add(k)
    } else {
      out.reconciles++
      out.asked += step.nodes.length
      out.widest = Math.max(out.widest, step.nodes.length)
      pending.push(...initiator.onNodes(step.nodes.map((n) => n.path), answerReconcile(b.tree, step.nodes)))
    }
  }
  return out
}

function differing(a: Side, b: Side): Set<string> {
  const out = new Set<string>()
  for (const [key, digest] of a.tree.entries()) if (b.tree.get(key) !== digest) out.add(key)
  for (const [key, digest] of b.tree.entries()) if (a.tree.get(key) !== digest) out.add(key)
  return out
}

describe('reconciliation descent (initiator against responder)', () => {
  it('reports exactly the differing keys, and one exchange makes the roots equal', () => {
    check(
      fc.property(pair, ({ a, b, maxNodes, order }) => {
        const diff = differing(a, b)
        const { send, ask, stray } = run(a, b, maxNodes, order)
        expect(new Set([...send, ...stray])).toEqual(diff)
        for (const key of ask) {
          expect(send.has(key)).toBe(true)
          expect((a.newest.get(key) as Stamp) > (b.newest.get(key) as Stamp)).toBe(true)
        }
        // The responder's records win where it sent them; strays and asked-for keys go up.
        for (const key of send) if (!ask.has(key)) a.tree.set(key, b.tree.get(key) as string)
        for (const key of [...stray, ...ask]) b.tree.set(key, a.tree.get(key) as string)
        for (const key of ask) a.tree.set(key, b.tree.get(key) as string)
        expect(a.tree.root()).toEqual(b.tree.root())
      }),
    )
  })

  it('needs no step for equal trees and a bounded number for k differences', () => {
    check(
      fc.property(pair, ({ a, b, maxNodes, order }) => {
        const k = differing(a, b).size
        const { entries, reconciles } = run(a, b)
        if (k === 0) expect(entries + reconciles).toBe(0)
        expect(entries).toBeLessThanOrEqual(Math.max(1, k))
        expect(reconciles).toBeLessThanOrEqual(a.tree.depth)
        // Cut into steps of at most maxNodes, answered in any order: the same exchanges, no node asked twice.
        const cut = run(a, b, maxNodes, order)
        expect(cut.entries).toBe(entries)
        expect(cut.widest).toBeLessThanOrEqual(maxNodes)
        expect(cut.asked).toBeLessThanOrEqual(k * a.tree.depth)
        if (maxNodes === Number.POSITIVE_INFINITY) expect(cut.reconciles).toBeLessThanOrEqual(a.tree.depth)
      }),
    )
  })
})

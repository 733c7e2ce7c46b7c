/**
 * Merkle tree laws (fast-check, seeded; replay with OUTPOST_SEED=<seed>, scale with
 * OUTPOST_PROPERTY_RUNS):
 * 1. Two trees have equal roots exactly when they hold the same entry sets, whatever the
 *    insertion order and whatever was inserted and deleted on the way.
 * 2. A tree updated incrementally by set/delete equals a tree built fresh from its final
 *    entries, node by node.
 * 3. Descending with diffChildren/diffEntries from both sides finds exactly the keys whose
 *    digests differ, touching O(k·log N) nodes, not N.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MerkleTree, diffChildren, diffEntries, hash64, needsEntryExchange, type Digest } from '../src/merkle'
import type { MerkleNodeInfo } from '../src/protocol/messages'
import { prng } from '../src/testing/random'

const seed = process.env['OUTPOST_SEED'] !== undefined ? Number(process.env['OUTPOST_SEED']) : Date.now() % 2 ** 31
const numRuns = Number(process.env['OUTPOST_PROPERTY_RUNS'] ?? 10_000)

function check<T>(property: fc.IProperty<T>, runs = numRuns): void {
  try {
    fc.assert(property, { seed, numRuns: runs })
  } catch (error) {
    console.error(`merkle property failed with seed ${seed}; replay with OUTPOST_SEED=${seed}`)
    throw error
  }
}


// Small alphabets make equal sets (and near-equal ones) common, so both directions of "iff" are exercised.
const keyArb = fc.constantFrom('a', 'b', 'c', '', '__proto__', 'constructor', 'k\u0000', 'ünï')
const digestArb = fc.constantFrom(hash64('1'), hash64('2'), hash64('3'))
const entrySetArb = fc.uniqueArray(fc.tuple(keyArb, digestArb), { selector: ([k]) => k, maxLength: 8 })

type Op = { set: [string, Digest] } | { del: string }
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(keyArb, digestArb).map((e): Op => ({ set: e })),
  keyArb.map((k): Op => ({ del: k })),
)

/** Builds a tree holding exactly `entries`, after a detour of random noise ops and in a shuffled order. */
function buildWithNoise(entries: readonly [string, Digest][], noise: readonly Op[], order: readonly number[], depth: number): MerkleTree {
  const tree = new MerkleTree({ depth })
  for (const op of noise) {
    if ('set' in op) tree.set(op.set[0], op.set[1])
    else tree.delete(op.del)
  }
  const wanted = new Map(entries)
  for (const key of [...tree.keys()]) if (!wanted.has(key)) tree.delete(key)
  const shuffled = entries.map((e, i) => [order[i] ?? 0, e] as const).sort((x, y) => x[0] - y[0])
  for (const [, [k, d]] of shuffled) tree.set(k, d)
  return tree
}

function sameSet(a: readonly [string, Digest][], b: readonly [string, Digest][]): boolean {
  if (a.length !== b.length) return false
  const m = new Map(a)
  return b.every(([k, d]) => m.get(k) === d)
}

function allNodes(tree: MerkleTree, path = ''): MerkleNodeInfo[] {
  const out = [tree.node(path)]
  for (const child of tree.children(path)) out.push(...allNodes(tree, child.path))
  return out
}

describe('MerkleTree roots', () => {
  it('are equal exactly when the entry sets are equal (any order, any detour)', () => {
    check(
      fc.property(
        entrySetArb,
        entrySetArb,
        fc.array(opArb, { maxLength: 12 }),
        fc.array(opArb, { maxLength: 12 }),
        fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
        fc.constantFrom(1, 2, 4),
        (a, b, noiseA, noiseB, order, depth) => {
          const ta = buildWithNoise(a, noiseA, order, depth)
          const tb = buildWithNoise(b, noiseB, [...order].reverse(), depth)
          const equalRoots = ta.root().hash === tb.root().hash && ta.root().count === tb.root().count
          expect(equalRoots).toBe(sameSet(a, b))
          expect(ta.root().count).toBe(a.length)
        },
      ),
    )
  })

  it('incremental set/delete equals a fresh build, node by node', () => {
    check(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.constantFrom(1, 2, 4), (ops, depth) => {
        const tree = new MerkleTree({ depth })
        const model = new Map<string, Digest>()
        for (const op of ops) {
          if ('set' in op) {
            tree.set(op.set[0], op.set[1])
            model.set(op.set[0], op.set[1])
          } else {
            expect(tree.delete(op.del)).toBe(model.delete(op.del))
          }
        }
        const fresh = MerkleTree.from(model, { depth })
        expect(allNodes(tree)).toEqual(allNodes(fresh))
        expect(tree.entries('')).toEqual(fresh.entries(''))
        expect(tree.size).toBe(model.size)
        for (const [k, d] of model) {
          expect(tree.get(k)).toBe(d)
          const leaf = tree.leafPath(k)
          expect(tree.entries(leaf)).toContainEqual([k, d])
          expect(tree.entries(leaf.slice(0, 1)).every(([key]) => tree.leafPath(key).startsWith(leaf.slice(0, 1)))).toBe(true)
        }
      }),
    )
  })

  it('a tree built in one pass from entries with duplicate keys equals the same sets made one by one', () => {
    check(
      fc.property(fc.array(fc.tuple(fc.oneof(keyArb, fc.string({ maxLength: 6 })), digestArb), { maxLength: 60 }), fc.constantFrom(1, 2, 4), (entries, depth) => {
        const incremental = new MerkleTree({ depth })
        for (const [key, digest] of entries) incremental.set(key, digest)
        const built = MerkleTree.from(entries, { depth })
        expect(allNodes(built)).toEqual(allNodes(incremental))
        expect(built.entries('')).toEqual(incremental.entries(''))
        expect(built.size).toBe(incremental.size)
      }),
    )
  })

  it('reports an empty node as count 0 with the zero hash, and no children for it', () => {
    const tree = new MerkleTree()
    expect(tree.root()).toEqual({ path: '', hash: '0000000000000000', count: 0 })
    tree.set('x', hash64('v'))
    tree.delete('x')
    expect(tree.root()).toEqual({ path: '', hash: '0000000000000000', count: 0 })
    expect(tree.children('')).toEqual([])
    expect(tree.entries('')).toEqual([])
  })
})

interface DescentResult {
  onlyLocalOrDifferent: Set<string>
  onlyRemoteOrDifferent: Set<string>
  nodesExchanged: number
  entriesExchanged: number
  rounds: number
}

/** Both sides of a reconciliation, run with the exported helpers exactly as the protocol header describes. */
function descend(local: MerkleTree, remote: MerkleTree): DescentResult {
  const result: DescentResult = { onlyLocalOrDifferent: new Set(), onlyRemoteOrDifferent: new Set(), nodesExchanged: 2, entriesExchanged: 0, rounds: 0 }
  const lr = local.root()
  const rr = remote.root()
  if (lr.hash === rr.hash) return result
  let frontier: [MerkleNodeInfo, MerkleNodeInfo][] = [[lr, rr]]
  while (frontier.length > 0) {
    result.rounds++
    const next: [MerkleNodeInfo, MerkleNodeInfo][] = []
    for (const [l, r] of frontier) {
      if (needsEntryExchange(l, r, local.depth)) {
        const le = local.entries(l.path)
        const re = remote.entries(r.path)
        result.entriesExchanged += le.length + re.length
        const diff = diffEntries(le, re)
        for (const k of diff.onlyLocalOrDifferent) result.onlyLocalOrDifferent.add(k)
        for (const k of diff.onlyRemoteOrDifferent) result.onlyRemoteOrDifferent.add(k)
      } else {
        const remoteChildren = remote.children(r.path)
        const differing = diffChildren(local, l.path, remoteChildren)
        result.nodesExchanged += remoteChildren.length + differing.length
        const byPath = new Map(remoteChildren.map((c) => [c.path, c]))
        for (const child of differing) {
          next.push([child, byPath.get(child.path) ?? { path: child.path, hash: '0000000000000000', count: 0 }])
        }
      }
    }
    frontier = next
  }
  return result
}

function expectedDiff(a: ReadonlyMap<string, Digest>, b: ReadonlyMap<string, Digest>): { onlyA: string[]; onlyB: string[] } {
  const onlyA = [...a].filter(([k, d]) => b.get(k) !== d).map(([k]) => k)
  const onlyB = [...b].filter(([k, d]) => a.get(k) !== d).map(([k]) => k)
  return { onlyA: onlyA.sort(), onlyB: onlyB.sort() }
}

describe('Merkle descent', () => {
  it('finds exactly the differing keys (property, random trees of up to 400 entries)', () => {
    check(
      fc.property(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 30 }), fc.integer(), fc.constantFrom(2, 3, 4), (n, k, s, depth) => {
        const rand = prng(s)
        const a = new Map<string, Digest>()
        for (let i = 0; i < n; i++) a.set(`key-${i}`, hash64(`v${i}`))
        const b = new Map(a)
        for (let i = 0; i < k; i++) {
          const key = `key-${Math.floor(rand() * (n + 10))}`
          const roll = rand()
          const target = rand() < 0.5 ? a : b
          if (roll < 0.4) target.set(key, hash64(`changed-${i}`))
          else target.delete(key)
        }
        const got = descend(MerkleTree.from(a, { depth }), MerkleTree.from(b, { depth }))
        const want = expectedDiff(a, b)
        expect([...got.onlyLocalOrDifferent].sort()).toEqual(want.onlyA)
        expect([...got.onlyRemoteOrDifferent].sort()).toEqual(want.onlyB)
      }),
      Math.max(1, Math.min(numRuns, 500)),
    )
  })

  it('after k=10 changes in N=20,000 exchanges a few hundred items, not N', () => {
    const rand = prng(seed)
    const n = 20_000
    const a = new Map<string, Digest>()
    for (let i = 0; i < n; i++) a.set(`rec-${i}`, hash64(`v${i}`))
    const b = new Map(a)
    // 4 updates on the remote, 3 local-only inserts, 3 remote deletes.
    for (let i = 0; i < 4; i++) b.set(`rec-${Math.floor(rand() * n)}`, hash64(`remote-edit-${i}`))
    for (let i = 0; i < 3; i++) a.set(`new-${i}`, hash64(`new-${i}`))
    for (let i = 0; i < 3; i++) b.delete(`rec-${Math.floor(rand() * n)}`)
    const local = MerkleTree.from(a)
    const remote = MerkleTree.from(b)
    const got = descend(local, remote)
    const want = expectedDiff(a, b)
    try {
      expect([...got.onlyLocalOrDifferent].sort()).toEqual(want.onlyA)
      expect([...got.onlyRemoteOrDifferent].sort()).toEqual(want.onlyB)
      const exchanged = got.nodesExchanged + got.entriesExchanged
      console.info(`descent N=${n} k=10: ${got.nodesExchanged} nodes + ${got.entriesExchanged} entries in ${got.rounds} rounds (seed ${seed})`)
      expect(exchanged).toBeLessThan(2_000)
      expect(exchanged * 10).toBeLessThan(n)
    } catch (error) {
      console.error(`descent scenario failed with seed ${seed}; replay with OUTPOST_SEED=${seed}`)
      throw error
    }
  })

  it('equal trees exchange only their roots', () => {
    const entries = Array.from({ length: 1000 }, (_, i) => [`k${i}`, hash64(String(i))] as const)
    const got = descend(MerkleTree.from(entries), MerkleTree.from([...entries].reverse()))
    expect(got.nodesExchanged).toBe(2)
    expect(got.entriesExchanged).toBe(0)
  })

  it('diffChildren treats a child missing on one side as empty and ignores nodes that are not children', () => {
    const tree = MerkleTree.from([['x', hash64('1')]])
    const [only] = tree.children('')
    expect(only).toBeDefined()
    // Remote has nothing: our only child differs; remote sends a grandchild path: ignored.
    const diff = diffChildren(tree, '', [{ path: 'ffff', hash: hash64('zz'), count: 1 }])
    expect(diff).toEqual([only])
    // Remote has a child we lack: it comes back as our empty node.
    const other = only?.path === '0' ? '1' : '0'
    const diff2 = diffChildren(tree, '', [only as MerkleNodeInfo, { path: other, hash: hash64('q'), count: 3 }])
    expect(diff2).toEqual([{ path: other, hash: '0000000000000000', count: 0 }])
  })

  it('diffEntries lists a key with different digests on both sides', () => {
    const d = diffEntries(
      [['same', hash64('1')], ['changed', hash64('2')], ['mine', hash64('3')]],
      [['same', hash64('1')], ['changed', hash64('9')], ['theirs', hash64('4')]],
    )
    expect(d.onlyLocalOrDifferent.sort()).toEqual(['changed', 'mine'])
    expect(d.onlyRemoteOrDifferent.sort()).toEqual(['changed', 'theirs'])
  })
})

describe('MerkleTree sparseness', () => {
  it('keeps nodes proportional to entries and entries(path) confined to the path', () => {
    const tree = new MerkleTree()
    for (let i = 0; i < 5000; i++) tree.set(`k${i}`, hash64(String(i)))
    const nodes = allNodes(tree)
    // At most one node per level per entry, plus the root: never the 65,536 leaf slots.
    expect(nodes.length).toBeLessThanOrEqual(5000 * 4 + 1)
    expect(nodes.length).toBeGreaterThan(4000)
    const leaf = tree.leafPath('k42')
    expect(leaf).toMatch(/^[0-9a-f]{4}$/)
    const under = tree.entries(leaf.slice(0, 2))
    expect(under.map(([k]) => k)).toContain('k42')
    expect(under.length).toBe(tree.node(leaf.slice(0, 2)).count)
    expect(under.length).toBeLessThan(100)
  })
})

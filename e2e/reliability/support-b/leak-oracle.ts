/**
 * The reference side of S5: random authorization rules for one map (claim-bound row filter,
 * key rule, read access) and random shapes, and what a caller with given claims may hold —
 * computed independently of the relay from the accepted writes and core's predicates and
 * LWW functions (the code both sides share by design).
 *
 * Membership, as DESIGN.md states it: a record is in a caller's shape when its visible
 * fields (or, for a tombstone, its last values) match `where AND filter(claims)`; a caller
 * may learn that a key exists (a move-out) only when the record's last values match
 * `filter(claims)`.
 */
import {
  MerkleTree,
  andPredicates,
  bindClaims,
  compilePredicate,
  isAlive,
  lwwDigest,
  lwwLatest,
  lwwView,
  mergeState,
  type LwwRecordState,
  type Predicate,
  type Shape,
  type Value,
} from '@outpost/core'
import { between, pick } from '../../../packages/server-lite/test/helpers/seed'

/** Token claims of one simulated user. */
export type UserClaims = Readonly<Record<string, Value>>

/** One map's rule, in the relay's config shape. */
export interface MapRuleSpec {
  readonly read: 'authenticated' | Predicate
  readonly write: 'authenticated'
  readonly filter?: Predicate
  readonly keys?: string
}

/** Teams the claims and records draw from. */
export const TEAMS = ['red', 'blue'] as const

/** A random rule: one of the claim-bound filters (or none), a key rule half the time, read open or by team. */
export function randomRule(random: () => number): MapRuleSpec {
  const filters: readonly (Predicate | undefined)[] = [
    { eq: ['owner', '$sub'] },
    { eq: ['team', '$team'] },
    { or: [{ eq: ['owner', '$sub'] }, { eq: ['public', true] }] },
    { and: [{ eq: ['team', '$team'] }, { not: { eq: ['hidden', true] } }] },
    { in: ['team', ['$team', 'all']] },
    { not: { eq: ['team', '$team'] } },
    undefined,
  ]
  const filter = pick(random, filters)
  const keyed = random() < 0.5 || filter === undefined
  const read: MapRuleSpec['read'] = random() < 0.8 ? 'authenticated' : { eq: ['team', 'red'] }
  return { read, write: 'authenticated', ...(filter === undefined ? {} : { filter }), ...(keyed ? { keys: '$sub/*' } : {}) }
}

/** A random shape over `map`: maybe a `where`, maybe a projection (always keeping `n`). */
export function randomShape(random: () => number, map: string): Shape {
  const wheres: readonly (Predicate | undefined)[] = [undefined, undefined, { eq: ['status', 'open'] }, { gte: ['n', between(random, 2, 7)] }, { or: [{ eq: ['status', 'done'] }, { exists: 'public' }] }]
  const where = pick(random, wheres)
  const fields = random() < 0.4 ? ['n', ...['owner', 'team', 'status', 'hidden', 'public'].filter(() => random() < 0.5)] : undefined
  return { map, ...(where === undefined ? {} : { where }), ...(fields === undefined ? {} : { fields }) }
}

/** Random claims: a team, sometimes none (an unbound `$team` then matches nothing). */
export function randomClaims(random: () => number): UserClaims {
  return random() < 0.15 ? {} : { team: pick(random, TEAMS) }
}

/** A random patch of record fields a user might write. */
export function randomPatch(random: () => number, subs: readonly string[]): Record<string, Value> {
  const patch: Record<string, Value> = {}
  if (random() < 0.7) patch['owner'] = pick(random, subs)
  if (random() < 0.7) patch['team'] = pick(random, [...TEAMS, 'all'])
  if (random() < 0.5) patch['status'] = pick(random, ['open', 'done'])
  if (random() < 0.3) patch['hidden'] = random() < 0.5
  if (random() < 0.2) patch['public'] = true
  patch['n'] = between(random, 0, 9)
  return patch
}

/** Everything one caller (claims + subject) may see of a map under a rule. */
export class CallerView {
  readonly readable: boolean
  readonly #visible: (record: Record<string, Value>) => boolean
  readonly #member: (record: Record<string, Value>) => boolean
  readonly #keyAllowed: (key: string) => boolean

  constructor(
    readonly rule: MapRuleSpec,
    readonly claims: UserClaims & { sub: string },
    readonly shape: Shape,
  ) {
    const filter = rule.filter === undefined ? undefined : bindClaims(rule.filter, claims)
    this.#visible = compilePredicate(filter) as (record: Record<string, Value>) => boolean
    this.#member = compilePredicate(andPredicates(shape.where, filter)) as (record: Record<string, Value>) => boolean
    this.readable = rule.read === 'authenticated' || (compilePredicate(rule.read) as (record: Record<string, Value>) => boolean)(claims as Record<string, Value>)
    const prefix = `${claims.sub}/`
    this.#keyAllowed = rule.keys === undefined ? () => true : (key) => key.startsWith(prefix)
  }

  /** The record's last values match the row filter: the caller may know the key exists. */
  visible(state: LwwRecordState): boolean {
    return this.#visible(lwwLatest(state) as Record<string, Value>)
  }

  /** The record belongs in the caller's shape. */
  member(state: LwwRecordState): boolean {
    if (!this.readable) return false
    return this.#member((isAlive(state) ? (lwwView(state) ?? {}) : lwwLatest(state)) as Record<string, Value>)
  }

  /** Whether the relay must accept a write of `change` over `current` (the write pipeline's rule checks). */
  mayWrite(key: string, current: LwwRecordState | undefined, change: LwwRecordState): boolean {
    if (!this.#keyAllowed(key)) return false
    if (this.rule.filter === undefined) return true
    if (current !== undefined && !this.visible(current)) return false
    return this.visible(current === undefined ? change : mergeState('lww', current, change))
  }

  /** The Merkle tree of what the caller must hold: members of `states`, digested over the shape's fields. */
  expectedTree(states: ReadonlyMap<string, LwwRecordState>): MerkleTree {
    const entries: [string, string][] = []
    for (const [key, state] of states) if (this.member(state)) entries.push([key, lwwDigest(state, this.shape.fields)])
    return MerkleTree.from(entries)
  }
}

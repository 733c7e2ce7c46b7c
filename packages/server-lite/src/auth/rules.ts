/**
 * Authorization rules per map: who may read, who may write, and a row filter over records
 * that may reference token claims (`{ eq: ['owner', '$sub'] }`). Evaluation reuses core's
 * predicates: an access predicate is evaluated against the claims object as if it were a
 * record, and the row filter is bound to the caller's claims once per session and map.
 *
 * Defaults: with no `rules` configured everything is allowed (a development relay). Once
 * `rules` exist, a map matched by neither its own name nor `'*'` is closed: nothing is
 * readable or writable until a rule says so.
 *
 * Topics and locks are matched by pattern: an exact name, else the longest prefix pattern
 * ending in `*` (`room:*`; `*` alone matches everything). With no `rules.topics`
 * (`rules.locks`) configured every topic (lock) is open; once some exist, a name no
 * pattern matches is closed.
 */
import { ConfigError, bindClaims, compilePredicate, predicateFields, validatePredicate, type Claims, type CompiledPredicate, type Predicate, type RecordValue } from '@outpost/core'
import type { Access, MapRule, RelayConfig, TopicRule } from '../config'
import type { Principal } from './jwt'

/** What one principal may do on one map. */
export interface MapAccess {
  readonly read: boolean
  readonly write: boolean
  /** The row filter bound to the caller's claims (undefined = every record). */
  readonly filter: Predicate | undefined
  /** `filter`, compiled; always true when there is none. */
  readonly visible: CompiledPredicate
  /**
   * Whether the caller may write `key` at all (the map's key rule, e.g. keys must begin
   * with `<sub>/`). A key outside it is refused with FORBIDDEN whether or not it exists,
   * so writes cannot probe for other users' keys.
   */
  readonly keyAllowed: (key: string) => boolean
}

const ALLOW_ALL: MapAccess = Object.freeze({ read: true, write: true, filter: undefined, visible: () => true, keyAllowed: () => true })
const DENY_ALL: MapAccess = Object.freeze({ read: false, write: false, filter: undefined, visible: () => false, keyAllowed: () => false })

interface CompiledRule {
  readonly read: (principal: Principal) => boolean
  readonly write: (principal: Principal) => boolean
  readonly filter: Predicate | undefined
  /** The fields `filter` reads (kept in the change log so cursors can tell who saw a record before). */
  readonly filterFields: readonly string[] | undefined
  readonly keys: string | undefined
}

/**
 * Binds a key rule to the caller's claims: `$claim` (letters, digits, `_` and `.` for a
 * nested claim) becomes the claim's value; a trailing `*` allows any key with that prefix.
 * A claim the token lacks allows no key at all (fail closed).
 */
export function bindKeyRule(pattern: string, claims: Claims): (key: string) => boolean {
  let unbound = false
  const bound = pattern.replace(/\$([A-Za-z_][\w.]*)/g, (_, name: string) => {
    let value: unknown = claims
    for (const part of name.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined
    if (typeof value !== 'string' && typeof value !== 'number') {
      unbound = true
      return ''
    }
    return String(value)
  })
  if (unbound) return () => false
  if (bound.endsWith('*')) {
    const prefix = bound.slice(0, -1)
    return (key) => key.startsWith(prefix)
  }
  return (key) => key === bound
}

function compileAccess(access: Access, where: string): (principal: Principal) => boolean {
  if (access === 'public') return () => true
  if (access === 'none') return () => false
  if (access === 'authenticated') return (p) => p.authenticated
  let compiled: CompiledPredicate
  try {
    compiled = compilePredicate(validatePredicate(access))
  } catch (error) {
    throw new ConfigError(`Invalid relay configuration:\n  - ${where}: ${error instanceof Error ? error.message : String(error)}`, { issues: [where] })
  }
  return (p) => compiled(p.claims as RecordValue)
}

/** What one principal may do on one topic. */
export interface TopicAccess {
  readonly publish: boolean
  readonly subscribe: boolean
}

type AccessCheck = (principal: Principal) => boolean

/** Exact names and `prefix*` patterns, looked up exact first, then longest prefix. */
class PatternTable<T> {
  readonly #exact = new Map<string, T>()
  /** `[prefix, value]`, longest prefix first. */
  readonly #prefixes: [string, T][] = []

  constructor(entries: Iterable<[string, T]>) {
    for (const [pattern, value] of entries) {
      if (pattern.endsWith('*')) this.#prefixes.push([pattern.slice(0, -1), value])
      else this.#exact.set(pattern, value)
    }
    this.#prefixes.sort((a, b) => b[0].length - a[0].length)
  }

  match(name: string): T | undefined {
    const exact = this.#exact.get(name)
    if (exact !== undefined) return exact
    for (const [prefix, value] of this.#prefixes) if (name.startsWith(prefix)) return value
    return undefined
  }
}

/** The relay's compiled rules; {@link RuleSet.access} answers per principal and map. */
export class RuleSet {
  readonly #rules: Map<string, CompiledRule> | undefined
  readonly #topics: PatternTable<{ publish: AccessCheck; subscribe: AccessCheck }> | undefined
  readonly #locks: PatternTable<AccessCheck> | undefined

  /** Compiles `config.rules`; throws {@link ConfigError} for a malformed predicate. */
  constructor(rules: RelayConfig['rules']) {
    if (rules === undefined) {
      this.#rules = undefined
      this.#topics = undefined
      this.#locks = undefined
      return
    }
    this.#topics =
      rules.topics === undefined
        ? undefined
        : new PatternTable(
            (Object.entries(rules.topics) as [string, TopicRule][]).map(([pattern, rule]) => [
              pattern,
              { publish: compileAccess(rule.publish, `rules.topics.${pattern}.publish`), subscribe: compileAccess(rule.subscribe, `rules.topics.${pattern}.subscribe`) },
            ]),
          )
    this.#locks =
      rules.locks === undefined ? undefined : new PatternTable((Object.entries(rules.locks) as [string, Access][]).map(([pattern, access]) => [pattern, compileAccess(access, `rules.locks.${pattern}`)]))
    this.#rules = new Map()
    for (const [name, rule] of Object.entries(rules.maps) as [string, MapRule][]) {
      let filter: Predicate | undefined
      if (rule.filter !== undefined) {
        try {
          filter = validatePredicate(rule.filter)
        } catch (error) {
          throw new ConfigError(`Invalid relay configuration:\n  - rules.maps.${name}.filter: ${error instanceof Error ? error.message : String(error)}`, { issues: [`rules.maps.${name}.filter`] })
        }
      }
      this.#rules.set(name, {
        read: compileAccess(rule.read, `rules.maps.${name}.read`),
        write: compileAccess(rule.write, `rules.maps.${name}.write`),
        filter,
        filterFields: filter === undefined ? undefined : predicateFields(filter),
        keys: rule.keys,
      })
    }
  }

  /** What `principal` may do on `map`. */
  access(map: string, principal: Principal): MapAccess {
    if (this.#rules === undefined) return ALLOW_ALL
    const rule = this.#rules.get(map) ?? this.#rules.get('*')
    if (rule === undefined) return DENY_ALL
    const filter = rule.filter === undefined ? undefined : bindClaims(rule.filter, principal.claims as Claims)
    return {
      read: rule.read(principal),
      write: rule.write(principal),
      filter,
      visible: filter === undefined ? () => true : compilePredicate(filter),
      keyAllowed: rule.keys === undefined ? () => true : bindKeyRule(rule.keys, principal.claims as Claims),
    }
  }

  /** The fields the row filter of `map` reads, or undefined when the map has none. */
  filterFields(map: string): readonly string[] | undefined {
    if (this.#rules === undefined) return undefined
    return (this.#rules.get(map) ?? this.#rules.get('*'))?.filterFields
  }

  /** What `principal` may do on `topic`. */
  topicAccess(topic: string, principal: Principal): TopicAccess {
    if (this.#topics === undefined) return { publish: true, subscribe: true }
    const rule = this.#topics.match(topic)
    if (rule === undefined) return { publish: false, subscribe: false }
    return { publish: rule.publish(principal), subscribe: rule.subscribe(principal) }
  }

  /** Whether `principal` may acquire, extend, release and check the lock `name`. */
  lockAccess(name: string, principal: Principal): boolean {
    if (this.#locks === undefined) return true
    return this.#locks.match(name)?.(principal) ?? false
  }
}

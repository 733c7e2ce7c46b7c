/**
 * What a record key and a map name may be. One function each, used by the worker's write
 * API, the relay's change validation and the protocol schemas, so a key one side accepts
 * is never refused (or silently altered) by the other.
 */
import { InvalidKeyError } from './errors'
import { isWellFormed, printable } from './unicode'

/** Limits of keys and map names, in UTF-16 code units. */
export const KEY_LIMITS = {
  /** Longest record key (`""`, `__proto__` and any other well-formed string up to this length are ordinary keys). */
  maxKeyLength: 1024,
  /** Longest map name (a map name is never empty). */
  maxMapNameLength: 256,
} as const

/** Throws {@link InvalidKeyError} unless `key` is a well-formed string of at most {@link KEY_LIMITS.maxKeyLength} code units. `what` names it in the message. */
export function assertKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`${what} must be a string, got ${typeof key}`)
  if (key.length > KEY_LIMITS.maxKeyLength) throw new InvalidKeyError(`${what} is ${key.length} characters long; keys are limited to ${KEY_LIMITS.maxKeyLength}`, { length: key.length, limit: KEY_LIMITS.maxKeyLength })
  if (!isWellFormed(key)) {
    throw new InvalidKeyError(`${what} ${printable(key.slice(0, 64))} contains a lone surrogate (half of a UTF-16 pair), which other replicas would receive as U+FFFD; use well-formed text (e.g. String.prototype.toWellFormed())`)
  }
}

/** Throws {@link InvalidKeyError} unless `map` is a non-empty, well-formed string of at most {@link KEY_LIMITS.maxMapNameLength} code units. */
export function assertMapName(map: unknown): asserts map is string {
  if (typeof map !== 'string' || map.length === 0 || map.length > KEY_LIMITS.maxMapNameLength) {
    throw new InvalidKeyError(`a map name must be a non-empty string of at most ${KEY_LIMITS.maxMapNameLength} characters`)
  }
  if (!isWellFormed(map)) {
    throw new InvalidKeyError(`map name ${printable(map.slice(0, 64))} contains a lone surrogate (half of a UTF-16 pair), which other replicas would receive as U+FFFD; use well-formed text`)
  }
}

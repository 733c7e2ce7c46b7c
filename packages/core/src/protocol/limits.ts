/**
 * What fits in one frame, and how many items are cut into frames that fit.
 *
 * Every frame either side sends is bounded in bytes and in elements (the decoder's
 * {@link CodecLimits}). A change that could not fit in a frame on its own can never
 * travel, so it is refused when it is written ({@link assertChangeFits}) instead of
 * wedging an outbox or a subscription later. Batches of changes, keys or nodes are cut by
 * their exact encoded size ({@link packBySize}), never by count alone.
 *
 * A relay announces its limits in `welcome`; a client uses {@link DEFAULT_WIRE_LIMITS}
 * until it has heard them (and remembers the last ones it heard, for offline writes).
 */
import { ValueTooLargeError } from '../errors'
import type { Change } from '../types'
import { DEFAULT_CODEC_LIMITS, measure, type FrameSize } from './codec'

/** The frame limits of one connection, as the relay announced them. */
export interface WireLimits {
  /** Largest frame, in bytes. */
  readonly maxFrameBytes: number
  /** Most array items plus map entries in one frame. */
  readonly maxElements: number
}

/** The limits a relay applies unless configured otherwise, and a client assumes before `welcome`. */
export const DEFAULT_WIRE_LIMITS: WireLimits = Object.freeze({
  maxFrameBytes: DEFAULT_CODEC_LIMITS.maxFrameBytes,
  maxElements: DEFAULT_CODEC_LIMITS.maxElements,
})

/** The smallest frame limit a relay may announce: room for one key, one node list, one error. */
export const MIN_FRAME_BYTES = 64 * 1024

/** Room a frame keeps for its envelope (type, ids, flags, array headers) around the items it carries. */
export const FRAME_ENVELOPE: FrameSize = Object.freeze({ bytes: 4096, elements: 64 })

/** The bytes and elements the items of one frame may take together under `limits`. */
export function itemBudget(limits: WireLimits): FrameSize {
  return { bytes: limits.maxFrameBytes - FRAME_ENVELOPE.bytes, elements: limits.maxElements - FRAME_ENVELOPE.elements }
}

/** The size of `size` against `budget`: undefined when it fits, else a {@link ValueTooLargeError} naming the limit. */
function tooLarge(size: FrameSize, budget: FrameSize, limits: WireLimits, what: string): ValueTooLargeError | undefined {
  if (size.bytes > budget.bytes) {
    return new ValueTooLargeError(
      `${what} encodes to ${size.bytes} bytes, over the limit of ${budget.bytes} bytes for one change (the relay's frame limit of ${limits.maxFrameBytes} bytes minus ${FRAME_ENVELOPE.bytes} for the envelope). Split it across several keys, or keep large blobs outside Outpost and store a reference`,
      { bytes: size.bytes, limitBytes: budget.bytes, maxFrameBytes: limits.maxFrameBytes },
    )
  }
  if (size.elements > budget.elements) {
    return new ValueTooLargeError(
      `${what} holds ${size.elements} array items and map entries, over the limit of ${budget.elements} for one change (the relay's ${limits.maxElements} per frame). Split it across several keys, or store the list in a compact form (a string or bytes)`,
      { elements: size.elements, limitElements: budget.elements },
    )
  }
  return undefined
}

/**
 * Measures `change` and throws {@link ValueTooLargeError} (naming the limit) when it could
 * never be sent alone in one frame under `limits`. `what` names it in the message
 * (e.g. `todos/t1` or `the record todos/t1 after this update`). Returns its size.
 */
export function assertChangeFits(change: Change, limits: WireLimits, what: string): FrameSize {
  const size = measure(change)
  const error = tooLarge(size, itemBudget(limits), limits, what)
  if (error !== undefined) throw error
  return size
}

/** Like {@link assertChangeFits} for an already measured item: the error, or undefined when it fits. */
export function sizeError(size: FrameSize, limits: WireLimits, what: string): ValueTooLargeError | undefined {
  return tooLarge(size, itemBudget(limits), limits, what)
}

/**
 * Cuts `items` into batches whose measured sizes add up to at most `budget` (bytes and
 * elements) and that hold at most `maxCount` items. Each item also counts one element, the
 * entry it takes in the list it is sent in (which `sizeOf` does not see). An item too large
 * for a batch on its own goes to `oversize` instead (the caller reports it) and is left
 * out. Lazy: a batch is measured only as it is taken, so a caller can pause between batches.
 */
export function* packBySize<T>(
  items: Iterable<T>,
  sizeOf: (item: T) => FrameSize,
  budget: FrameSize,
  maxCount: number,
  oversize?: (item: T, size: FrameSize) => void,
): Generator<T[], void, undefined> {
  let batch: T[] = []
  let bytes = 0
  let elements = 0
  for (const item of items) {
    const size = sizeOf(item)
    // Its entry in the list: without it, a batch of small items cut by elements would overflow the frame by one per item.
    const itemElements = size.elements + 1
    if (size.bytes > budget.bytes || itemElements > budget.elements) {
      oversize?.(item, size)
      continue
    }
    if (batch.length > 0 && (batch.length >= maxCount || bytes + size.bytes > budget.bytes || elements + itemElements > budget.elements)) {
      yield batch
      batch = []
      bytes = 0
      elements = 0
    }
    batch.push(item)
    bytes += size.bytes
    elements += itemElements
  }
  if (batch.length > 0) yield batch
}

/**
 * Like {@link packBySize} for a list in hand, with a shortcut: when the whole list fits one
 * batch by `sizeOfAll` (the sum of what `sizeOf` gives each item, found at once, e.g. by
 * {@link measureTotal}), it is that one batch and no item is measured alone. Otherwise it
 * cuts as {@link packBySize} does. A relay streaming pages of small records measures each
 * page once instead of each record.
 */
export function* packListBySize<T>(
  items: readonly T[],
  sizeOf: (item: T) => FrameSize,
  sizeOfAll: (items: readonly T[]) => FrameSize,
  budget: FrameSize,
  maxCount: number,
  oversize?: (item: T, size: FrameSize) => void,
): Generator<T[], void, undefined> {
  if (items.length === 0) return
  if (items.length <= maxCount) {
    const total = sizeOfAll(items)
    // Each item also counts its entry in the list, as in packBySize.
    if (total.bytes <= budget.bytes && total.elements + items.length <= budget.elements) {
      yield [...items]
      return
    }
  }
  yield* packBySize(items, sizeOf, budget, maxCount, oversize)
}

/**
 * The sizes {@link measure} gives each of `values`, added up, from one encoding of the
 * whole list (its own array header taken off): what {@link packBySize} would sum for them,
 * without measuring each alone. Throws like {@link measure}.
 */
export function measureTotal(values: readonly unknown[]): FrameSize {
  const list = measure(values)
  const n = values.length
  const header = n < 16 ? 1 : n < 65536 ? 3 : 5
  return { bytes: list.bytes - header, elements: list.elements - n }
}

/** The encoded size of a string key in a list (msgpack string header plus UTF-8 bytes), without encoding it. */
export function keySize(key: string): FrameSize {
  let bytes = 0
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < key.length) {
      // A surrogate pair is one 4-byte code point.
      bytes += 4
      i++
    } else bytes += 3
  }
  return { bytes: bytes + (bytes < 32 ? 1 : bytes < 256 ? 2 : bytes < 65536 ? 3 : 5), elements: 0 }
}

/**
 * How bus messages are checked and encoded, once for every implementation: what a publish
 * accepts (typed errors for bad input), how big a message is ({@link busMessageBytes}, the
 * figure `maxMessageBytes` bounds), and the packet that carries one or more messages between
 * instances.
 *
 * A message is a msgpack array: `['h', at, map, seq, map, seq, …]`, `['t', at, topic,
 * publisher, seq, payload]` or `['e', at, channel, value]` (`at`: the publisher's clock when
 * published). A packet is `[version, node, message…]`, built from messages already encoded
 * (large payloads are not encoded twice) and decoded through the codec's bounded pre-scan,
 * then checked field by field: a packet from a relay of another version, or a corrupt one,
 * is an {@link InvalidMessageError}, never a crash.
 */
import { InvalidKeyError, InvalidMessageError, InvalidValueError } from '../errors'
import { assertMapName } from '../keys'
import { concatBytes, decode, encode } from '../protocol/codec'
import type { Value } from '../types'
import { isWellFormed, printable } from '../unicode'
import { assertValue } from '../value'
import type { BusEvent, BusTopicMessage, MapHint } from './bus'

/** The packet format this build writes and reads. */
export const BUS_PACKET_VERSION = 1

/** Longest topic or channel name, in UTF-16 code units (the protocol's topic limit). */
export const MAX_BUS_NAME_LENGTH = 256
/** Longest publisher replica id (the protocol's replica id limit). */
export const MAX_PUBLISHER_LENGTH = 128
/** Longest instance id a packet may name. */
export const MAX_NODE_LENGTH = 64

/**
 * Default `maxMessageBytes`: a topic message carrying a frame of the relay's default 1 MiB
 * frame limit, with its topic name and publisher id, fits.
 */
export const DEFAULT_BUS_MESSAGE_BYTES = 1024 * 1024 + 4096

/** One message, as implementations queue and deliver it. */
export type BusItem =
  | { readonly kind: 'hints'; readonly at: number; readonly hints: readonly MapHint[] }
  | { readonly kind: 'topic'; readonly at: number; readonly message: BusTopicMessage }
  | { readonly kind: 'event'; readonly at: number; readonly event: BusEvent }

/** A decoded packet: who sent it and what it carries, in publish order. */
export interface BusPacket {
  readonly node: string
  readonly items: readonly BusItem[]
}

function checkName(name: unknown, what: string, max: number): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > max) {
    throw new InvalidKeyError(`${what} must be a non-empty string of at most ${max} characters`, { what })
  }
  if (!isWellFormed(name)) throw new InvalidKeyError(`${what} ${printable(name.slice(0, 64))} contains a lone surrogate; use well-formed text`, { what })
}

function checkSeq(seq: unknown, what: string): asserts seq is number {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new InvalidValueError(`${what} must be a non-negative safe integer, got ${String(seq)}`, { what })
}

/** Throws {@link InvalidKeyError} / {@link InvalidValueError} unless `hints` is a list of valid hints. */
export function assertHints(hints: unknown): asserts hints is readonly MapHint[] {
  if (!Array.isArray(hints)) throw new InvalidValueError('hints must be an array of { map, seq }')
  for (const hint of hints as unknown[]) {
    if (typeof hint !== 'object' || hint === null) throw new InvalidValueError('each hint must be { map, seq }')
    const { map, seq } = hint as { map?: unknown; seq?: unknown }
    assertMapName(map)
    checkSeq(seq, 'a hint seq')
  }
}

/** Throws {@link InvalidKeyError} / {@link InvalidValueError} unless `message` is a valid topic message. */
export function assertTopicMessage(message: unknown): asserts message is BusTopicMessage {
  if (typeof message !== 'object' || message === null) throw new InvalidValueError('a topic message must be { topic, publisher, seq, payload }')
  const { topic, publisher, seq, payload } = message as Partial<Record<keyof BusTopicMessage, unknown>>
  checkName(topic, 'a topic name', MAX_BUS_NAME_LENGTH)
  checkName(publisher, 'a publisher replica id', MAX_PUBLISHER_LENGTH)
  checkSeq(seq, 'a topic message seq')
  if (!(payload instanceof Uint8Array)) throw new InvalidValueError('a topic message payload must be a Uint8Array')
}

/** Throws {@link InvalidKeyError} / {@link InvalidValueError} unless `event` is a valid event. */
export function assertBusEvent(event: unknown): asserts event is BusEvent {
  if (typeof event !== 'object' || event === null) throw new InvalidValueError('an event must be { channel, value }')
  const { channel, value } = event as Partial<Record<keyof BusEvent, unknown>>
  checkName(channel, 'a channel name', MAX_BUS_NAME_LENGTH)
  assertValue(value, 'an event value')
}

function wireOf(item: BusItem): unknown[] {
  switch (item.kind) {
    case 'hints': {
      const out: unknown[] = ['h', item.at]
      for (const hint of item.hints) out.push(hint.map, hint.seq)
      return out
    }
    case 'topic':
      return ['t', item.at, item.message.topic, item.message.publisher, item.message.seq, item.message.payload]
    case 'event':
      return ['e', item.at, item.event.channel, item.event.value]
  }
}

/** The message as it travels (checked input only: see the `assert*` functions). */
export function encodeBusItem(item: BusItem): Uint8Array {
  return encode(wireOf(item))
}

/** The size of a message as the bus encodes it: what `maxMessageBytes` bounds. */
export function busMessageBytes(item: BusItem): number {
  return encodeBusItem(item).length
}

/** A msgpack array header for `count` elements. */
function arrayHeader(count: number): Uint8Array {
  if (count < 16) return Uint8Array.of(0x90 | count)
  if (count < 0x10000) return Uint8Array.of(0xdc, count >>> 8, count & 0xff)
  return Uint8Array.of(0xdd, count >>> 24, (count >>> 16) & 0xff, (count >>> 8) & 0xff, count & 0xff)
}

/** The bytes of a packet carrying `items` (each from {@link encodeBusItem}), in order, from instance `node`. */
export function encodeBusPacket(node: string, items: readonly Uint8Array[]): Uint8Array {
  return concatBytes([arrayHeader(items.length + 2), encode(BUS_PACKET_VERSION), encode(node), ...items])
}

function bad(message: string): InvalidMessageError {
  return new InvalidMessageError(`bus packet: ${message}`)
}

function itemOf(wire: unknown): BusItem {
  if (!Array.isArray(wire) || wire.length < 2) throw bad('a message must be an array')
  const [kind, at] = wire as unknown[]
  if (typeof at !== 'number' || !Number.isFinite(at)) throw bad('a message needs its publish time')
  try {
    if (kind === 'h') {
      const hints: MapHint[] = []
      if (wire.length % 2 !== 0) throw bad('hints come in map, seq pairs')
      for (let i = 2; i < wire.length; i += 2) hints.push({ map: wire[i] as string, seq: wire[i + 1] as number })
      assertHints(hints)
      return { kind: 'hints', at, hints }
    }
    if (kind === 't' && wire.length === 6) {
      const message = { topic: wire[2] as string, publisher: wire[3] as string, seq: wire[4] as number, payload: wire[5] as Uint8Array }
      assertTopicMessage(message)
      return { kind: 'topic', at, message }
    }
    if (kind === 'e' && wire.length === 4) {
      const event = { channel: wire[2] as string, value: wire[3] as Value }
      assertBusEvent(event)
      return { kind: 'event', at, event }
    }
  } catch (error) {
    if (error instanceof InvalidMessageError) throw error
    throw bad(error instanceof Error ? error.message : String(error))
  }
  throw bad(`unknown message kind ${printable(String(kind)).slice(0, 16)}`)
}

/**
 * Decodes a packet of at most `maxBytes` (a larger one is refused before decoding).
 * Throws {@link InvalidMessageError} for anything that is not a packet of this version,
 * and the codec's typed errors for what is not msgpack or breaks its limits.
 */
export function decodeBusPacket(bytes: Uint8Array, maxBytes: number): BusPacket {
  // Every element takes at least one byte, so the byte bound bounds them too (a packet may carry many hints).
  const wire = decode(bytes, { maxFrameBytes: maxBytes, maxElements: maxBytes })
  if (!Array.isArray(wire) || wire.length < 2) throw bad('not a packet')
  const [version, node] = wire as unknown[]
  if (version !== BUS_PACKET_VERSION) throw bad(`version ${String(version)} (this relay reads version ${BUS_PACKET_VERSION}; run one relay version per bus)`)
  if (typeof node !== 'string' || node.length === 0 || node.length > MAX_NODE_LENGTH) throw bad('a packet must name its instance')
  return { node, items: wire.slice(2).map(itemOf) }
}

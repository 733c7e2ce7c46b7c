/**
 * HLC stamps as a byte stream (wire v2): each stamp is three varints — wall time as a
 * zigzag delta from the previous stamp of the frame (from a per-frame base for the
 * first), counter, and an index into the frame's replica table. Three bytes for a stamp
 * near its neighbours from a known replica, instead of a 17+ character string.
 *
 * One stream per frame, read in the order it was written: it costs the frame one msgpack
 * element (a `bin`), so a frame never holds more elements in v2 than in v1 and a batch cut
 * by v1 sizes passes the decoder's element limit in v2 too.
 *
 * Only canonical stamps (exactly what `clock/hlc.ts` writes) are streamed, so the reader
 * rebuilds each one as the exact string it was. {@link StampWriter.write} says when a
 * stamp cannot be (a string no clock wrote, or a full replica table); the caller then
 * sends its message as in v1.
 */
import { InvalidMessageError } from '../errors'
import type { Stamp } from '../types'

/** Largest wall time a stamp encodes (36^10 - 1, as `clock/hlc.ts`). */
export const MAX_WALL = 36 ** 10 - 1
const MAX_COUNTER = 0xffff
/** Longest replica id a stamp carries. */
export const MAX_REPLICA_LENGTH = 128
/** Entries a frame's replica table may hold. */
export const MAX_REPLICAS = 65_536
/** Bytes of the longest varint read (8 × 7 bits covers every safe integer). */
const MAX_VARINT_BYTES = 8

/** Value of a lowercase base-36 digit, or -1. */
function base36(code: number): number {
  return code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 122 ? code - 87 : -1
}

/** Writes stamps into one frame's stream and keeps its replica table. */
export class StampWriter {
  /** The frame's replica table, in first-use order. */
  readonly replicas: string[] = []
  /** Wall time the first stamp's delta starts from (0 until there is one). */
  base = 0
  readonly #index = new Map<string, number>()
  #started = false
  #previous = 0
  #bytes = new Uint8Array(256)
  #length = 0

  /** The index of `replica` in the table, adding it while there is room (below `limit`); undefined when full. */
  replicaIndex(replica: string, limit = MAX_REPLICAS): number | undefined {
    let index = this.#index.get(replica)
    if (index === undefined) {
      if (this.replicas.length >= limit) return undefined
      index = this.replicas.length
      this.replicas.push(replica)
      this.#index.set(replica, index)
    }
    return index
  }

  /** Appends `stamp`; false (and nothing written) when it is not canonical or its replica finds no room. */
  write(stamp: string): boolean {
    const length = stamp.length
    // Canonical: 10 base-36 digits, '-', 4 hex digits, '-', a replica of 1..128 code units.
    if (length <= 16 || length > 16 + MAX_REPLICA_LENGTH || stamp.charCodeAt(10) !== 45 || stamp.charCodeAt(15) !== 45) return false
    let wall = 0
    for (let i = 0; i < 10; i++) {
      const digit = base36(stamp.charCodeAt(i))
      if (digit < 0) return false
      wall = wall * 36 + digit
    }
    let counter = 0
    for (let i = 11; i < 15; i++) {
      const digit = base36(stamp.charCodeAt(i))
      if (digit < 0 || digit > 15) return false
      counter = counter * 16 + digit
    }
    return this.writeParsed(wall, counter, stamp.slice(16))
  }

  /**
   * Appends the stamp `wall`-`counter`-`replica` whose parts a caller already read from a
   * canonical stamp (wall and counter in range, replica of 1..128 code units); false (and
   * nothing written) when the replica finds no room.
   */
  writeParsed(wall: number, counter: number, replica: string): boolean {
    const index = this.replicaIndex(replica)
    if (index === undefined) return false
    if (!this.#started) {
      this.#started = true
      this.base = this.#previous = wall
    }
    const delta = wall - this.#previous
    this.#previous = wall
    this.#uint(delta >= 0 ? delta * 2 : -delta * 2 - 1)
    this.#uint(counter)
    this.#uint(index)
    return true
  }

  /** The stream written so far. */
  bytes(): Uint8Array {
    return this.#bytes.slice(0, this.#length)
  }

  #uint(value: number): void {
    if (this.#length + MAX_VARINT_BYTES > this.#bytes.length) {
      const grown = new Uint8Array(this.#bytes.length * 2)
      grown.set(this.#bytes)
      this.#bytes = grown
    }
    let rest = value
    // Arithmetic, not bit operations: deltas exceed 32 bits.
    while (rest >= 0x80) {
      this.#bytes[this.#length++] = (rest % 0x80) | 0x80
      rest = Math.floor(rest / 0x80)
    }
    this.#bytes[this.#length++] = rest
  }
}

/** @internal The error for a malformed packed batch (its stamp stream included): `where` in it, `problem` there. */
export function malformedBatch(where: string, problem: string): InvalidMessageError {
  return new InvalidMessageError(`Received a packed change batch (wire v2) that is malformed (${where}: ${problem}); check that both sides run compatible Outpost versions`, {
    issues: [`${where}: ${problem}`],
  })
}

/** The name of a place in a batch, as {@link StampReader.read} takes it. */
function place(at: string | { readonly where: string }): string {
  return typeof at === 'string' ? at : at.where
}

/** Reads what {@link StampWriter} wrote, rebuilding each stamp as the exact string it was. */
export class StampReader {
  readonly #bytes: Uint8Array
  readonly #replicas: readonly string[]
  #pos = 0
  #previous: number
  #wall = -1
  #wallText = ''
  // The stamp's tail (`-counter-replica`) as last built: neighbouring stamps mostly share it.
  #counter = -1
  #replica = -1
  #tail = ''

  /** A reader of `bytes`, whose first delta starts from `base`, naming replicas of `replicas`. */
  constructor(base: number, replicas: readonly string[], bytes: Uint8Array) {
    this.#previous = base
    this.#replicas = replicas
    this.#bytes = bytes
  }

  /** True when every byte was read (a stream with bytes left over is malformed). */
  get done(): boolean {
    return this.#pos === this.#bytes.length
  }

  /**
   * The next stamp; `at` names it in the error when the stream is malformed: a string, or
   * an object whose `where` is only read then (no string built per stamp read).
   */
  read(at: string | { readonly where: string }): Stamp {
    const zigzag = this.#uint(at)
    const counter = this.#uint(at)
    const index = this.#uint(at)
    const wall = this.#previous + (zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2)
    if (wall < 0 || wall > MAX_WALL) throw malformedBatch(place(at), `a stamp's wall time ${wall} is outside 0..${MAX_WALL}`)
    if (counter > MAX_COUNTER) throw malformedBatch(place(at), `a stamp's counter ${counter} is over ${MAX_COUNTER}`)
    const replica = this.#replicas[index]
    if (replica === undefined) throw malformedBatch(place(at), `replica index ${index} is outside its table of ${this.#replicas.length}`)
    if (replica.length === 0 || replica.length > MAX_REPLICA_LENGTH) throw malformedBatch(place(at), `a stamp names replica ${index}, which is not a valid replica id (1..${MAX_REPLICA_LENGTH} characters)`)
    this.#previous = wall
    if (wall !== this.#wall) {
      this.#wall = wall
      this.#wallText = wall.toString(36).padStart(10, '0')
    }
    if (counter !== this.#counter || index !== this.#replica) {
      this.#counter = counter
      this.#replica = index
      this.#tail = `-${counter.toString(16).padStart(4, '0')}-${replica}`
    }
    return (this.#wallText + this.#tail) as Stamp
  }

  /** One varint: at most {@link MAX_VARINT_BYTES} bytes, no overlong form, a safe integer. */
  #uint(at: string | { readonly where: string }): number {
    const bytes = this.#bytes
    let value = 0
    let scale = 1
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const byte = bytes[this.#pos++]
      if (byte === undefined) throw malformedBatch(place(at), 'the stamp stream ends inside a stamp')
      value += (byte & 0x7f) * scale
      if (byte < 0x80) {
        if (byte === 0 && i > 0) throw malformedBatch(place(at), 'the stamp stream holds an overlong number')
        if (value > Number.MAX_SAFE_INTEGER) throw malformedBatch(place(at), 'the stamp stream holds a number beyond 2^53')
        return value
      }
      scale *= 0x80
    }
    throw malformedBatch(place(at), `the stamp stream holds a number longer than ${MAX_VARINT_BYTES} bytes`)
  }
}

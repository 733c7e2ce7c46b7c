/**
 * Hybrid logical clock (HLC): stamps `(wall ms, counter, replicaId)` that follow physical
 * time closely, never go backwards on one replica, and always sort after every stamp the
 * replica has seen.
 *
 * Encoding: `wwwwwwwwww-cccc-<replica>`, where `w` is the wall time in base 36 padded to
 * 10 digits (enough for any time up to year 9999 and beyond, 36^10 ms ≈ year 117 800),
 * `c` the counter in hex padded to 4 digits (0..0xFFFF). Both prefixes are fixed width and
 * use lowercase digits whose ASCII order is their numeric order, so plain string `<` on
 * two stamps is exactly the tuple order (wall, counter, replica).
 */
import { ClockDriftError, InvalidValueError } from '../errors'
import type { ReplicaId, Stamp } from '../types'

/** Largest counter a stamp carries; the clock advances its wall by 1 ms rather than exceed it. */
export const MAX_COUNTER = 0xffff

/** Largest wall time (ms since epoch) a stamp can encode: 36^10 - 1. */
export const MAX_WALL = 36 ** 10 - 1

/** Longest replica id a stamp may carry (matches the protocol's replica id limit). */
export const MAX_REPLICA_ID_LENGTH = 128

const WALL_WIDTH = 10
const COUNTER_WIDTH = 4
const PREFIX_LENGTH = WALL_WIDTH + 1 + COUNTER_WIDTH + 1
const STAMP_PATTERN = /^[0-9a-z]{10}-[0-9a-f]{4}-/

/** The three parts of a stamp. */
export interface StampParts {
  /** Wall time in ms since the epoch (integer, 0..{@link MAX_WALL}). */
  readonly wall: number
  /** Logical counter within one wall millisecond (integer, 0..{@link MAX_COUNTER}). */
  readonly counter: number
  /** The replica that issued the stamp. */
  readonly replica: ReplicaId
}

function checkParts(wall: number, counter: number, replica: string): void {
  if (!Number.isInteger(wall) || wall < 0 || wall > MAX_WALL) {
    throw new InvalidValueError(`stamp wall time ${wall} is not an integer between 0 and ${MAX_WALL}; pass Date.now()-style milliseconds`, { wall })
  }
  if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) {
    throw new InvalidValueError(`stamp counter ${counter} is not an integer between 0 and ${MAX_COUNTER}`, { counter })
  }
  if (typeof replica !== 'string' || replica.length === 0 || replica.length > MAX_REPLICA_ID_LENGTH) {
    throw new InvalidValueError(`a replica id must be a non-empty string of at most ${MAX_REPLICA_ID_LENGTH} characters`, { replica: String(replica).slice(0, 200) })
  }
}

/** Encodes stamp parts; throws {@link InvalidValueError} when a part is out of range. */
export function encodeStamp(parts: StampParts): Stamp {
  const { wall, counter, replica } = parts
  checkParts(wall, counter, replica)
  return `${wall.toString(36).padStart(WALL_WIDTH, '0')}-${counter.toString(16).padStart(COUNTER_WIDTH, '0')}-${replica}` as Stamp
}

/**
 * Decodes a stamp. Used on wire data, so anything that {@link encodeStamp} would not have
 * produced (wrong widths, uppercase digits, empty or over-long replica) throws
 * {@link InvalidValueError}.
 */
export function decodeStamp(stamp: unknown): StampParts {
  if (typeof stamp !== 'string' || stamp.length <= PREFIX_LENGTH || !STAMP_PATTERN.test(stamp)) {
    throw new InvalidValueError('malformed HLC stamp: expected "<10 base-36 digits>-<4 hex digits>-<replica id>"', {
      stamp: typeof stamp === 'string' ? stamp.slice(0, 200) : typeof stamp,
    })
  }
  const wall = parseInt(stamp.slice(0, WALL_WIDTH), 36)
  const counter = parseInt(stamp.slice(WALL_WIDTH + 1, WALL_WIDTH + 1 + COUNTER_WIDTH), 16)
  const replica = stamp.slice(PREFIX_LENGTH)
  checkParts(wall, counter, replica)
  return { wall, counter, replica: replica as ReplicaId }
}

/** The replica that issued a stamp, read without validating the rest (for stamps already accepted). */
export function stampReplica(stamp: Stamp): ReplicaId {
  return stamp.slice(PREFIX_LENGTH) as ReplicaId
}

/**
 * True when `stamp` decodes (see {@link decodeStamp}), found without decoding it: the fixed
 * widths bound the wall and the counter, so the pattern and the replica's length decide.
 * Cheap enough for every stamp received.
 */
export function isStamp(stamp: unknown): stamp is Stamp {
  return typeof stamp === 'string' && stamp.length > PREFIX_LENGTH && stamp.length <= PREFIX_LENGTH + MAX_REPLICA_ID_LENGTH && STAMP_PATTERN.test(stamp)
}

/** Orders two stamps: negative, zero or positive, like a sort comparator. */
export function compareStamps(a: Stamp, b: Stamp): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** The later of two stamps; `null` stands for "no stamp" and loses to any stamp. */
export function maxStamp(a: Stamp | null, b: Stamp | null): Stamp | null {
  if (a === null) return b
  if (b === null) return a
  return a < b ? b : a
}

/** Options of an {@link Hlc}. */
export interface HlcOptions {
  /** This replica's id; it ends every stamp and breaks ties between replicas. */
  readonly replicaId: ReplicaId
  /** The physical clock in ms (injected so tests control time). */
  readonly now?: () => number
  /** How far (ms) a remote stamp's wall time may be ahead of this clock before it is rejected. */
  readonly maxDrift?: number
  /** Ms added to `now()`, e.g. the relay's clock offset measured at `welcome`. */
  readonly offset?: number
  /** The last stamp this replica issued or saw before a restart, so it never issues a smaller one. */
  readonly last?: Stamp | null
}

/**
 * A hybrid logical clock for one replica. {@link tick} stamps a local event;
 * {@link receive} merges a remote stamp so later local stamps sort after it.
 */
export class Hlc {
  /** This replica's id. */
  readonly replicaId: ReplicaId
  /** Largest accepted lead (ms) of a remote wall time over this clock's physical time. */
  readonly maxDrift: number
  readonly #now: () => number
  #offset: number
  #wall = 0
  #counter = 0
  #last: Stamp | null = null

  constructor(options: HlcOptions) {
    const { replicaId, now = Date.now, maxDrift = 60_000, offset = 0, last = null } = options
    // Validates the replica id once, so tick() cannot fail on it later.
    encodeStamp({ wall: 0, counter: 0, replica: replicaId })
    if (!(maxDrift >= 0)) throw new InvalidValueError(`maxDrift must be a non-negative number of ms, got ${maxDrift}`)
    this.replicaId = replicaId
    this.maxDrift = maxDrift
    this.#now = now
    this.#offset = checkOffset(offset)
    if (last !== null) {
      const parts = decodeStamp(last)
      this.#wall = parts.wall
      this.#counter = parts.counter
      this.#last = last
    }
  }

  /** Ms added to the injected `now()`; set it from the relay's time to correct a wrong local clock. */
  get offset(): number {
    return this.#offset
  }

  set offset(value: number) {
    this.#offset = checkOffset(value)
  }

  /** The last stamp this clock issued or merged, or null before the first. */
  get last(): Stamp | null {
    return this.#last
  }

  /** This clock's physical time: `now() + offset`, in whole ms, clamped to the encodable range. */
  physicalNow(): number {
    const t = Math.floor(this.#now() + this.#offset)
    return Number.isFinite(t) ? Math.min(Math.max(t, 0), MAX_WALL) : 0
  }

  /** A stamp for a local event: greater than every stamp this clock issued or received. */
  tick(): Stamp {
    const pt = this.physicalNow()
    if (pt > this.#wall) {
      this.#wall = pt
      this.#counter = 0
    } else {
      // The wall clock stalled or jumped backward: keep the last wall, count within it.
      this.#counter += 1
    }
    return this.#issue()
  }

  /**
   * Checks a remote stamp without merging it: throws {@link ClockDriftError} (with this
   * clock's physical time as `receiverTime`) when its wall is more than `maxDrift` ahead,
   * and {@link InvalidValueError} when it is malformed (an out-of-range counter cannot be
   * encoded, so it is malformed).
   */
  checkRemote(stamp: Stamp): StampParts {
    const parts = decodeStamp(stamp)
    const pt = this.physicalNow()
    if (parts.wall - pt > this.maxDrift) {
      throw new ClockDriftError(
        `a stamp from replica ${parts.replica} is ${parts.wall - pt} ms ahead of this clock (max ${this.maxDrift} ms); the sender should correct its clock offset using receiverTime`,
        pt,
        { remoteWall: parts.wall, maxDrift: this.maxDrift },
      )
    }
    return parts
  }

  /** Merges a remote stamp (after {@link checkRemote}); returns the clock's new last stamp, which sorts after `stamp`. */
  receive(stamp: Stamp): Stamp {
    const remote = this.checkRemote(stamp)
    const pt = this.physicalNow()
    const wall = Math.max(this.#wall, remote.wall, pt)
    let counter: number
    if (wall === this.#wall && wall === remote.wall) counter = Math.max(this.#counter, remote.counter) + 1
    else if (wall === this.#wall) counter = this.#counter + 1
    else if (wall === remote.wall) counter = remote.counter + 1
    else counter = 0
    this.#wall = wall
    this.#counter = counter
    return this.#issue()
  }

  /**
   * Resets the clock's floor to `floor` (null: no floor), possibly lowering it. Only for a
   * replica whose stamps above `floor` are all being re-stamped (its clock ran ahead and the
   * relay's offset corrected it): every stamp it keeps, issued or received, must be at or
   * below `floor`, so the next tick still sorts after all of them.
   */
  rebase(floor: Stamp | null): void {
    if (floor === null) {
      this.#wall = 0
      this.#counter = 0
      this.#last = null
      return
    }
    const parts = decodeStamp(floor)
    this.#wall = parts.wall
    this.#counter = parts.counter
    this.#last = floor
  }

  #issue(): Stamp {
    if (this.#counter > MAX_COUNTER) {
      // Borrow the next millisecond rather than wrap: order is kept, drift is 1 ms per 65 536 events.
      this.#wall += 1
      this.#counter = 0
    }
    const stamp = encodeStamp({ wall: this.#wall, counter: this.#counter, replica: this.replicaId })
    this.#last = stamp
    return stamp
  }
}

function checkOffset(offset: number): number {
  if (!Number.isFinite(offset)) throw new InvalidValueError(`a clock offset must be a finite number of ms, got ${offset}`)
  return offset
}

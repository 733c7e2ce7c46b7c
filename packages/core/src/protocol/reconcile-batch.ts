/**
 * Packed reconciliation lists (wire v2): Merkle node lists (`reconcile`, `nodes`) and key
 * lists (`entries`). The message level is in `wire-v2.ts`.
 *
 *   nodes   = [1, paths, hashes, counts]            hashes: 8 bytes per node, in one `bin`
 *   entries = [1, base, replicas, keys, digests, stamps, markers]
 *             digests: 8 bytes per key; stamps: the newest stamp of each key that has one
 *             (`stamp-stream.ts`); markers: null when every entry has a stamp, else one
 *             byte per entry: 0 `[key, digest]`, 1 `[key, digest, null]`, 2 with a stamp
 *
 * In v1 a node is a map with its three field names and its hash as 16 hex characters (about
 * 40 bytes); an entry carries its digest in hex and its stamp as a string (about 50 bytes
 * plus the key). Packed: about 12 bytes plus the path, 12 plus the key.
 *
 * Only what round-trips exactly is packed: digests of 16 lowercase hex characters and
 * canonical stamps; anything else (which the schema then judges) travels as in v1. A list
 * too short to gain anything does too. Unpacking rebuilds the v1 shape and checks only the
 * structure; the message schema validates the result.
 */
import { MAX_WALL, StampReader, StampWriter, malformedBatch } from './stamp-stream'

const FORMAT = 1
/** Lists shorter than this travel as in v1: a packed header would outweigh the gain. */
const MIN_PACKED = 4
const HASH_BYTES = 8
/** The third item of an entry: none, null, a stamp. */
const NO_STAMP = 0
const NULL_STAMP = 1
const STAMPED = 2

/** Writes a 16-character lowercase hex digest into `out` at `at`; false when it is not one. */
function writeHex(hex: unknown, out: Uint8Array, at: number): boolean {
  if (typeof hex !== 'string' || hex.length !== 16) return false
  for (let i = 0; i < HASH_BYTES; i++) {
    const high = nibble(hex.charCodeAt(2 * i))
    const low = nibble(hex.charCodeAt(2 * i + 1))
    if (high < 0 || low < 0) return false
    out[at + i] = (high << 4) | low
  }
  return true
}

function nibble(code: number): number {
  return code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 102 ? code - 87 : -1
}

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'))

function readHex(bytes: Uint8Array, at: number): string {
  let hex = ''
  for (let i = 0; i < HASH_BYTES; i++) hex += HEX[bytes[at + i] as number]
  return hex
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Packs a Merkle node list, or returns undefined when it travels as in v1. */
export function packNodes(nodes: readonly unknown[]): unknown[] | undefined {
  if (nodes.length < MIN_PACKED) return undefined
  const paths: unknown[] = []
  const counts: unknown[] = []
  const hashes = new Uint8Array(nodes.length * HASH_BYTES)
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]
    if (!isObject(node) || typeof node['path'] !== 'string' || typeof node['count'] !== 'number' || !writeHex(node['hash'], hashes, i * HASH_BYTES)) return undefined
    paths.push(node['path'])
    counts.push(node['count'])
  }
  return [FORMAT, paths, hashes, counts]
}

/** Unpacks a node list written by {@link packNodes}; throws `InvalidMessageError` when it is malformed. */
export function unpackNodes(batch: unknown): unknown[] {
  if (!Array.isArray(batch) || batch.length !== 4 || batch[0] !== FORMAT) throw malformedBatch('nodes', `a node batch must be [${FORMAT}, paths, hashes, counts]`)
  const [, paths, hashes, counts] = batch as [unknown, unknown, unknown, unknown]
  if (!Array.isArray(paths) || !Array.isArray(counts) || !(hashes instanceof Uint8Array)) throw malformedBatch('nodes', 'paths and counts must be lists, hashes bytes')
  if (counts.length !== paths.length || hashes.length !== paths.length * HASH_BYTES) throw malformedBatch('nodes', `${paths.length} paths need as many counts and ${paths.length * HASH_BYTES} hash bytes`)
  return paths.map((path, i) => ({ path, hash: readHex(hashes, i * HASH_BYTES), count: counts[i] }))
}

/** Packs an entry list (`[key, digest]` or `[key, digest, stamp | null]`), or returns undefined when it travels as in v1. */
export function packEntries(entries: readonly unknown[]): unknown[] | undefined {
  if (entries.length < MIN_PACKED) return undefined
  const stamps = new StampWriter()
  const keys: unknown[] = []
  const digests = new Uint8Array(entries.length * HASH_BYTES)
  const markers = new Uint8Array(entries.length)
  let allStamped = true
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]
    if (!Array.isArray(entry) || (entry.length !== 2 && entry.length !== 3) || typeof entry[0] !== 'string' || !writeHex(entry[1], digests, i * HASH_BYTES)) return undefined
    keys.push(entry[0])
    if (entry.length === 2) markers[i] = NO_STAMP
    else if (entry[2] === null) markers[i] = NULL_STAMP
    else if (typeof entry[2] === 'string' && stamps.write(entry[2])) markers[i] = STAMPED
    else return undefined
    if (markers[i] !== STAMPED) allStamped = false
  }
  return [FORMAT, stamps.base, stamps.replicas, keys, digests, stamps.bytes(), allStamped ? null : markers]
}

/** Unpacks an entry list written by {@link packEntries}; throws `InvalidMessageError` when it is malformed. */
export function unpackEntries(batch: unknown): unknown[] {
  if (!Array.isArray(batch) || batch.length !== 7 || batch[0] !== FORMAT) throw malformedBatch('entries', `an entry batch must be [${FORMAT}, base, replicas, keys, digests, stamps, markers]`)
  const [, base, replicas, keys, digests, stream, markers] = batch as unknown[]
  if (typeof base !== 'number' || !Number.isSafeInteger(base) || base < 0 || base > MAX_WALL) throw malformedBatch('entries', `the base wall time must be an integer in 0..${MAX_WALL}`)
  if (!Array.isArray(replicas) || !replicas.every((replica) => typeof replica === 'string')) throw malformedBatch('entries', 'the replica table must be a list of strings')
  if (!Array.isArray(keys) || !(digests instanceof Uint8Array) || !(stream instanceof Uint8Array)) throw malformedBatch('entries', 'keys must be a list, digests and stamps bytes')
  if (digests.length !== keys.length * HASH_BYTES) throw malformedBatch('entries', `${keys.length} keys need ${keys.length * HASH_BYTES} digest bytes`)
  if (markers !== null && !(markers instanceof Uint8Array && markers.length === keys.length)) throw malformedBatch('entries', `markers must be null or ${keys.length} bytes`)
  const stamps = new StampReader(base, replicas as string[], stream)
  const entries = keys.map((key, i) => {
    const digest = readHex(digests, i * HASH_BYTES)
    const marker = markers === null ? STAMPED : markers[i]
    if (marker === NO_STAMP) return [key, digest]
    if (marker === NULL_STAMP) return [key, digest, null]
    if (marker !== STAMPED) throw malformedBatch(`entries[${i}]`, `marker ${marker} is not 0, 1 or 2`)
    return [key, digest, stamps.read(`entries[${i}]`)]
  })
  if (!stamps.done) throw malformedBatch('entries', 'the stamp stream holds more stamps than the entries use')
  return entries
}

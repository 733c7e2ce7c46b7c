/**
 * Wire v2: change lists travel packed. Callers build and receive the same message objects
 * in every version (a `Change[]` with full states); only the frame differs. `codec.ts`
 * calls {@link packMessage} before encoding and {@link unpackMessage} after decoding when
 * the session negotiated version 2.
 *
 * Why: in v1 each record repeats its map name, the names `kind`/`map`/`key`/`state`/
 * `fields`/`deleted`, every field name, and a 17+ character HLC string per field and per
 * tombstone: about 60% of the bytes of a typical 200-byte record. v2 writes each name
 * once per frame and stamps as a few bytes (`change-batch.ts`, `stamp-stream.ts`): a
 * 200-byte record with six fields takes ~160 bytes instead of ~458.
 *
 * A message carrying a list that packs (`ops` and `changes`: changes; `reconcile` and
 * `nodes`: Merkle nodes; `entries`: keys with digests and newest stamps, see
 * `reconcile-batch.ts`) has `batch` in place of that list. It is sent as in v1 (which v2
 * readers read too) when its list is empty or holds anything a clock and the write API
 * would not produce (a stamp that is not canonical, a digest that is not hex, something
 * that is not a change): the receiver then judges it exactly as in v1 (for an `ops` batch,
 * one malformed change is refused alone).
 *
 * Extending: another message with a list worth packing gets an entry in {@link PACKERS};
 * a layout change bumps its batch's `format`.
 */
import { InvalidMessageError } from '../errors'
import { packChanges, unpackChanges } from './change-batch'
import { packEntries, packNodes, unpackEntries, unpackNodes } from './reconcile-batch'
import { malformedBatch } from './stamp-stream'

type Shaped = Record<string, unknown>
const isObject = (value: unknown): value is Shaped => typeof value === 'object' && value !== null && !Array.isArray(value)

/** What unpacking a message gave: the message, and whether its change list was unpacked and checked. */
interface Unpacked {
  readonly message: unknown
  /**
   * The message's `changes` came out of a packed batch and every one holds to the change
   * schema's rules (a `changes` message: one that did not made the whole message invalid),
   * so only the message's other fields are left to check.
   */
  readonly checkedChanges: boolean
}

/** How one message type travels in v2: what to send for a message, and what was sent back into a message. */
interface Packer {
  pack(message: Shaped): Shaped
  unpack(data: Shaped): Unpacked
}

/**
 * A packer that puts the list in `field` into `batch` with `pack` (which may decline: the
 * list then travels as in v1) and takes it back out with `unpack`.
 */
function listPacker(field: string, pack: (list: readonly unknown[]) => unknown[] | undefined, unpack: (batch: unknown, data: Shaped) => Unpacked['message'], checkedChanges = false): Packer {
  return {
    pack(message) {
      const list = message[field]
      if (!Array.isArray(list) || list.length === 0) return message
      const batch = pack(list)
      if (batch === undefined) return message
      const { [field]: _, ...rest } = message
      return { ...rest, batch }
    },
    unpack(data) {
      if (!Object.hasOwn(data, 'batch')) return { message: data, checkedChanges: false }
      if (Object.hasOwn(data, field)) throw malformedBatch('message', `it carries both ${field} and batch`)
      const { batch, ...rest } = data
      return { message: { ...rest, [field]: unpack(batch, data) }, checkedChanges }
    },
  }
}

/**
 * Unpacks a change list. `strict`: one change that breaks the change schema makes the whole
 * message invalid (a `changes` message, as its schema says); otherwise it is left for
 * `parseChange` to refuse alone (an `ops` batch).
 */
function changeList(strict: boolean): (batch: unknown, data: Shaped) => unknown[] {
  return (batch, data) => {
    // Lenient: mark each valid change for `parseChange`; strict: any problem refuses the lot, so no marks are needed.
    const { changes, problem } = unpackChanges(batch, !strict)
    if (strict && problem !== undefined) {
      const type = String(data['type']).slice(0, 64)
      throw new InvalidMessageError(`Received a "${type}" message that is not valid (${problem}); check that both sides run compatible Outpost versions`, { issues: [problem], type })
    }
    return changes
  }
}

/** Message types whose v2 frames differ from v1, and how. */
const PACKERS: Readonly<Record<string, Packer>> = {
  ops: listPacker('changes', packChanges, changeList(false)),
  changes: listPacker('changes', packChanges, changeList(true), true),
  reconcile: listPacker('nodes', packNodes, unpackNodes),
  nodes: listPacker('nodes', packNodes, unpackNodes),
  entries: listPacker('entries', packEntries, unpackEntries),
}

/** The v2 form of `message` (the message itself when its type travels as in v1). */
export function packMessage<M extends { readonly type: string }>(message: M): unknown {
  const packer = Object.hasOwn(PACKERS, message.type) ? PACKERS[message.type] : undefined
  return packer === undefined ? message : packer.pack(message as unknown as Shaped)
}

/**
 * The message a decoded v2 frame stands for (the data itself when its type travels as in
 * v1), and whether its change list was unpacked and checked. Throws {@link InvalidMessageError}.
 */
export function unpackMessage(data: unknown): Unpacked {
  if (!isObject(data) || typeof data['type'] !== 'string' || !Object.hasOwn(PACKERS, data['type'])) return { message: data, checkedChanges: false }
  return (PACKERS[data['type']] as Packer).unpack(data)
}

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
 * A message carrying changes (`ops`, `changes`) has `batch` in place of `changes`. It is
 * sent as in v1 (a `changes` list, which v2 readers read too) when its list is empty or
 * holds anything a clock and the write API would not produce (a stamp that is not
 * canonical, something that is not a change): the receiver then judges it exactly as in v1
 * (for an `ops` batch, one malformed change is refused alone).
 *
 * Extending: another message whose field carries stamps (e.g. reconciliation entries with
 * a key's newest stamp) gets an entry in {@link PACKERS}, reusing `stamp-stream.ts`.
 */
import { InvalidMessageError } from '../errors'
import { packChanges, unpackChanges } from './change-batch'
import { malformedBatch } from './stamp-stream'

type Shaped = Record<string, unknown>
const isObject = (value: unknown): value is Shaped => typeof value === 'object' && value !== null && !Array.isArray(value)

// ───────────────────────────── messages ─────────────────────────────

/** How one message type travels in v2: what to send for a message, and what was sent back into a message. */
interface Packer {
  pack(message: Shaped): Shaped
  unpack(data: Shaped): Shaped
}

/**
 * Packs a message's `changes` list into `batch`. `strict`: one change that breaks the
 * change schema makes the whole message invalid (a `changes` message, as its schema
 * says); otherwise it is left for `parseChange` to refuse alone (an `ops` batch).
 */
function changeListPacker(strict: boolean): Packer {
  return {
    pack(message) {
      const changes = message['changes']
      if (!Array.isArray(changes) || changes.length === 0) return message
      const batch = packChanges(changes)
      if (batch === undefined) return message
      const { changes: _, ...rest } = message
      return { ...rest, batch }
    },
    unpack(data) {
      if (!Object.hasOwn(data, 'batch')) return data
      if (Object.hasOwn(data, 'changes')) throw malformedBatch('message', 'it carries both changes and batch')
      const { batch, ...rest } = data
      const { changes, problem } = unpackChanges(batch)
      if (strict && problem !== undefined) {
        const type = String(data['type']).slice(0, 64)
        throw new InvalidMessageError(`Received a "${type}" message that is not valid (${problem}); check that both sides run compatible Outpost versions`, { issues: [problem], type })
      }
      return { ...rest, changes }
    },
  }
}

/** Message types whose v2 frames differ from v1, and how. */
const PACKERS: Readonly<Record<string, Packer>> = {
  ops: changeListPacker(false),
  changes: changeListPacker(true),
}

/** The v2 form of `message` (the message itself when its type travels as in v1). */
export function packMessage<M extends { readonly type: string }>(message: M): unknown {
  const packer = Object.hasOwn(PACKERS, message.type) ? PACKERS[message.type] : undefined
  return packer === undefined ? message : packer.pack(message as unknown as Shaped)
}

/**
 * The message a decoded v2 frame stands for (the data itself when its type travels as in
 * v1), and whether a packed field was unpacked (its changes are checked, see
 * {@link isCheckedChange}). Throws {@link InvalidMessageError}.
 */
export function unpackMessage(data: unknown): { readonly message: unknown; readonly unpacked: boolean } {
  if (!isObject(data) || typeof data['type'] !== 'string' || !Object.hasOwn(PACKERS, data['type'])) return { message: data, unpacked: false }
  const message = (PACKERS[data['type']] as Packer).unpack(data)
  return { message, unpacked: message !== data }
}

/**
 * The layout constants of a packed change batch (wire v2): what `change-batch.ts` packs and
 * reads and `stored-changes.ts` packs straight from stored bytes. One definition, so the two
 * writers cannot drift apart.
 */

/** Layout version of a packed batch. */
export const BATCH_FORMAT = 1
/** A record's kind, in the low bits of its head byte. */
export const KIND_LWW = 0
export const KIND_OR = 1
export const KIND_COUNTER = 2
/** LWW head flags: the record carries a deletion stamp; all its fields share one stamp. */
export const LWW_DELETED = 4
export const LWW_SHARED = 8
/** Entries a map, field-name (or counter-replica) table may hold: indices 0..127 are one byte. */
export const SMALL_TABLE = 128

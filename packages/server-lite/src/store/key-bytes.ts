/**
 * Byte forms both relay stores (LMDB and Postgres) give keys and leaves: keys and map
 * names as their UTF-16 code units big-endian (so byte order is JavaScript's string
 * order), Merkle leaf paths as numbers, and the limits stored values are decoded under.
 */
import { SYNC_TREE_DEPTH, leafPathOf } from '@outpost/core'

/** Stored values are decoded without the wire's size limits: they were checked when written. */
export const STORED_LIMITS = { maxFrameBytes: Number.MAX_SAFE_INTEGER, maxDepth: 1024, maxElements: Number.MAX_SAFE_INTEGER }

/** `value`'s UTF-16 code units, big-endian (lone surrogates included, as Node writes them), so byte order is code-unit order. */
export function utf16(value: string): Buffer {
  return Buffer.from(value, 'utf16le').swap16()
}

/** The string whose {@link utf16} bytes are `bytes`. */
export function fromUtf16(bytes: Buffer): string {
  return Buffer.from(bytes).swap16().toString('utf16le')
}

/** The leaf path of `key` as a number (SYNC_TREE_DEPTH hex nibbles). */
export function leafOf(key: string): number {
  return Number.parseInt(leafPathOf(key, SYNC_TREE_DEPTH), 16)
}

/** A leaf number as its hex leaf path. */
export function leafHex(leaf: number): string {
  return leaf.toString(16).padStart(SYNC_TREE_DEPTH, '0')
}

/**
 * Correcting a wrong clock (issue: a device 5 minutes fast wrote offline; its writes were
 * refused for drift for minutes, then beat edits made later elsewhere).
 *
 * Every outbox entry remembers the clock offset its stamps were made under. When the relay
 * measures a different offset at `welcome`, entries made under an offset that differs by
 * more than {@link RESTAMP_THRESHOLD_MS} get every stamp's wall time moved by the
 * difference (their order is kept), and the engine rewrites its local states to match
 * before it reconciles or sends anything. The clock itself is rebased onto the newest
 * stamp the device keeps ({@link clockFloor}), so later writes follow corrected time.
 */
import { maxStamp, shiftStamp, stampsOf, type Change, type Stamp } from '@outpost/core'
import type { OutboxEntry } from './outbox'

/** An offset change smaller than this (ms) is clock jitter, not a wrong clock: nothing is re-stamped. */
export const RESTAMP_THRESHOLD_MS = 1_000

/** Whether an entry made under `entryOffset` needs re-stamping under `offset`. */
export function needsRestamp(entryOffset: number | undefined, offset: number): boolean {
  return Math.abs(offset - (entryOffset ?? 0)) > RESTAMP_THRESHOLD_MS
}

/** The re-stamped entries and the old → new stamp of every stamp they carried. */
export interface RestampPlan {
  readonly entries: OutboxEntry[]
  readonly mapping: Map<Stamp, Stamp>
}

/** Re-stamps the entries that need it under `offset` (see the module comment). */
export function restampEntries(pending: readonly OutboxEntry[], offset: number, restampChange: (change: Change, mapping: ReadonlyMap<Stamp, Stamp>) => Change): RestampPlan {
  const mapping = new Map<Stamp, Stamp>()
  const entries: OutboxEntry[] = []
  for (const entry of pending) {
    if (!needsRestamp(entry.offset, offset)) continue
    const shift = offset - (entry.offset ?? 0)
    // Removes name tags the device observed, possibly another device's: only own stamps move.
    const own = entry.change.kind === 'or' ? entry.change.state.adds.map((add) => add[0]) : stampsOf(entry.change)
    for (const stamp of own) if (!mapping.has(stamp)) mapping.set(stamp, shiftStamp(stamp, shift))
    entries.push({ ...entry, change: restampChange(entry.change, mapping), offset })
  }
  return { entries, mapping }
}

/**
 * The newest stamp the device keeps once `restamped` are re-stamped: stamps it received
 * or had accepted (`floor`) and the stamps of pending writes that stay as they are.
 */
export function clockFloor(floor: Stamp | null, pending: readonly { readonly change: Change; readonly offset?: number }[], offset: number): Stamp | null {
  let out = floor
  for (const entry of pending) {
    if (needsRestamp(entry.offset, offset)) continue
    for (const stamp of stampsOf(entry.change)) out = maxStamp(out, stamp)
  }
  return out
}

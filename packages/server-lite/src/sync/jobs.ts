/**
 * The sync store's background jobs (run by the relay on a timer, on the leader only):
 * tombstone GC and change-log retention, each a paged scan over every map.
 */
import { decodeStamp, isTombstone, type LwwRecordState, type SyncRecord } from '@outpost/core'
import type { MapCatalog } from './map-catalog'
import type { RelayStore } from './sync-service'

/** Records scanned per store page (slices, view builds, GC). */
export const SCAN_PAGE = 2_000

/**
 * Deletes LWW tombstones older than `horizonMs` (no alive field, tombstone stamp older
 * than the horizon), scanning each map in pages. Returns how many were collected.
 */
export async function collectTombstones(store: RelayStore, catalog: MapCatalog, now: number, horizonMs: number): Promise<number> {
  const cutoff = now - horizonMs
  const collectable = (record: SyncRecord): boolean => {
    const lww = record.state as LwwRecordState
    return isTombstone(lww) && decodeStamp(lww.deleted).wall < cutoff
  }
  let collected = 0
  for (const map of await store.syncMaps()) {
    const info = await store.mapInfo(map)
    if (info?.kind !== 'lww') continue
    let after: string | undefined
    for (;;) {
      const page = await store.scanRecords(map, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE })
      const doomed = page.filter(collectable).map((r) => r.key)
      if (doomed.length > 0) {
        // The store re-checks inside its transaction: a key revived meanwhile stays.
        const removed = await store.removeRecords(map, doomed, collectable)
        collected += removed.length
        const state = catalog.peek(map)
        if (state !== undefined && removed.length > 0) state.forgetTree()
      }
      if (page.length < SCAN_PAGE) break
      after = (page[page.length - 1] as SyncRecord).key
    }
  }
  return collected
}

/** Keeps at most `changeLogEntries` log entries per map; returns how many were dropped. */
export async function trimLogs(store: RelayStore, catalog: MapCatalog, changeLogEntries: number): Promise<number> {
  let dropped = 0
  for (const map of await store.syncMaps()) {
    const info = await store.mapInfo(map)
    if (info === undefined) continue
    const through = info.head - changeLogEntries
    if (through <= info.floor) continue
    dropped += await store.trimLog(map, through)
    const state = catalog.peek(map)
    if (state !== undefined) state.floor = Math.max(state.floor, through)
  }
  return dropped
}

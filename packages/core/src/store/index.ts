/** The persistence seam (`Store`) and the in-memory backend. */
export type { ScanOptions, Store, StoreBatch, StoreEntry } from './store'
export { MemoryStore, cloneValue } from './memory-store'
export { SYNC_TREE_DEPTH } from './sync-store'
export type { RecordScan, SyncLogEntry, SyncMapInfo, SyncRecord, SyncStore, WriteDecision, WriteOutcome, WriteRequest } from './sync-store'
export { recordOrder } from './memory-sync'

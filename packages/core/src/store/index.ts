/** The persistence seam (`Store`) and the in-memory backend. */
export type { ScanOptions, Store, StoreBatch, StoreEntry } from './store'
export { MemoryStore, cloneValue } from './memory-store'

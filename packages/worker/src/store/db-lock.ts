/**
 * One writer per database: an exclusive Web Lock (`navigator.locks`) per IndexedDB
 * database name, held by the store that writes it from open to close.
 *
 * The store keeps in memory what it knows of the database (the page directory, which
 * pages exist, cached pages, the sequence number: see `idb-store.ts` and `page-cache.ts`)
 * and trusts it on every commit, which is right only while no one else writes. The
 * SharedWorker's name carries the app's version, so tabs of two deploys run two workers,
 * and a leader tab (the fallback without SharedWorker) can overlap the next leader for a
 * moment: each could open the same database. The lock makes the second one wait until the
 * first closes (its last tab went, or it stepped aside for an upgrade), for at most
 * `waitMs`; then it gives up with {@link DatabaseLockedError} (`DATABASE_LOCKED`), having
 * read and written nothing.
 *
 * Where the browser has no Web Locks (before Safari 15.4; Node), there is no lock, and the
 * one-worker-per-name rule is the only guard, as it was before.
 */
import { DatabaseLockedError } from '@outpost/core'

/** How long (ms) a store waits for another engine to release the database before refusing with {@link DatabaseLockedError}. */
export const DB_LOCK_WAIT_MS = 10_000

/** The Web Lock name of IndexedDB database `dbName`. */
export function dbLockName(dbName: string): string {
  return `outpost-db:${dbName}`
}

/** A held database lock. */
export interface DbLock {
  /** Releases the lock (idempotent). */
  release(): void
}

/** What a store without Web Locks holds. */
const NO_LOCK: DbLock = { release: () => undefined }

/** The global Web Locks manager, when the runtime has one. */
export function defaultLocks(): LockManager | undefined {
  return (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks
}

/**
 * Takes the exclusive lock of database `dbName` on `locks`, waiting at most `waitMs` for
 * another holder to release it; rejects with {@link DatabaseLockedError} after that.
 * Without `locks`, holds nothing (see the module comment).
 */
export async function acquireDbLock(locks: LockManager | undefined, dbName: string, waitMs: number = DB_LOCK_WAIT_MS): Promise<DbLock> {
  if (locks === undefined) return NO_LOCK
  const name = dbLockName(dbName)
  let release!: () => void
  // The lock is held while this promise is pending: `release` settles it.
  const held = new Promise<void>((resolve) => (release = resolve))
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), waitMs)
  await new Promise<void>((granted, refused) => {
    locks
      .request(name, { mode: 'exclusive', signal: abort.signal }, () => {
        clearTimeout(timer)
        granted()
        return held
      })
      .catch((error: unknown) => {
        clearTimeout(timer)
        if (!abort.signal.aborted) {
          refused(error)
          return
        }
        refused(
          new DatabaseLockedError(
            `Another Outpost engine is using the local database "${dbName}" (a tab or worker of another version of this app, or a tab that has not finished closing) and did not release it within ${waitMs} ms. Close the app's other tabs or reload them onto this version, then reload this one; nothing was read or written.`,
            { name: dbName, waitMs },
          ),
        )
      })
  })
  return { release }
}

/** Reconciliation shared by devices and relays. */
export { ReconcileInitiator, answerReconcile, compareEntries, differingChildren } from './reconcile'
export type { EntriesAnswer, ReconcileEntry, ReconcileStep, ReconcileTree } from './reconcile'

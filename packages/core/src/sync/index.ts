/** Reconciliation shared by devices and relays. */
export { ReconcileInitiator, answerReconcile, compareEntries } from './reconcile'
export type { EntriesAnswer, ReconcileEntry, ReconcileInitiatorOptions, ReconcileStep, ReconcileTree } from './reconcile'

/**
 * `@outpost/core/testing`: acceptance suites and fixtures that other packages run against their implementations.
 *
 * @module @outpost/core/testing
 */
export { runStoreTests, valueDifference } from './store-suite'
export { runBusTests } from './bus-suite'
export type { BusTestCluster, BusTestOptions } from './bus-suite'
export { runSyncStoreTests } from './sync-store-suite'
export type { SyncStoreTestOptions } from './sync-store-suite'
export type { StoreTestOptions } from './store-suite'
export { sampleChange, sampleClientMessages, sampleServerMessages } from './sample-messages'
export { prng, testSeed } from './random'

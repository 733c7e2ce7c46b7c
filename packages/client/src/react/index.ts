/**
 * `@outpost/client/react`: React bindings. Every hook reads a shared live store through
 * `useSyncExternalStore`, so equal queries in many components share one engine
 * subscription and a render never sees a torn value.
 *
 * @module @outpost/client/react
 */
export { OutpostProvider, useClient } from './provider'
export type { OutpostProviderProps } from './provider'
export { useQuery, useQueryResult, useRecord, useStatus, useCounter, useLive, useLiveResult } from './hooks'
export type { LiveResult, QueryResult } from './hooks'

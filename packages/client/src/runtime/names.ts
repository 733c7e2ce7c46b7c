/**
 * Names of the browser-wide things a client shares with other tabs. The protocol and
 * worker versions are part of every name, so tabs of an old deploy and of a new one never
 * share a worker (or a leader) that speaks the wrong protocol.
 */
import { PROTOCOL_VERSION, hash64 } from '@outpost/core'

/**
 * The engine build this SDK expects. Bump it with any change to the engine API that an
 * old worker would not understand.
 */
export const WORKER_VERSION = '0.1.0'

/**
 * The SharedWorker name: `outpost:<name>:p<protocol>:w<worker version>`, plus `:s<digest>`
 * of the app's schema versions when it has any, so a deploy with new schema versions never
 * shares a worker (which announces its first tab's versions to the relay) with an old one.
 */
export function sharedWorkerName(name: string, schemaVersions?: Readonly<Record<string, number>>): string {
  const base = `outpost:${name}:p${PROTOCOL_VERSION}:w${WORKER_VERSION}`
  if (schemaVersions === undefined || Object.keys(schemaVersions).length === 0) return base
  const tag = Object.keys(schemaVersions).sort().map((map) => `${map}=${schemaVersions[map]}`).join(',')
  return `${base}:s${hash64(tag).slice(0, 8)}`
}

/** The Web Lock held by the leader tab (leader-tab mode). */
export function leaderLockName(name: string): string {
  return `outpost:${name}:leader`
}

/** The BroadcastChannel followers and the leader talk on (leader-tab mode). */
export function tabChannelName(name: string): string {
  return `${sharedWorkerName(name)}:tabs`
}

/**
 * Failover times from the clients' status timelines: for each relay kill, the clients that
 * were live on that relay at that moment (`status.relayUrl`), how long until each was live
 * again, and on which relay. Clients that went offline on purpose in that
 * interval are left out: their time says nothing about failover.
 */
import type { StatusSample } from './cluster-clients'

/** A relay kill. */
export interface KillEvent {
  readonly at: number
  readonly relay: number
  readonly url: string
  /** When the relay was listening again (undefined until it was). */
  restartedAt?: number
}

/** A client as failover sees it. */
export interface TimelineSource {
  readonly name: string
  readonly home: number
  readonly statuses: readonly StatusSample[]
  /** Intervals (ms since epoch) the client was forced offline. */
  readonly offlineIntervals: readonly (readonly [number, number])[]
}

/** One client's recovery from one kill. */
export interface Failover {
  readonly client: string
  readonly killAt: number
  /** Milliseconds from the kill to live again (subscriptions re-synced), or undefined when it never was. */
  readonly ms: number | undefined
  /** Milliseconds from the kill to a relay's welcome (state `syncing` or `live`), or undefined. */
  readonly connectedMs: number | undefined
  /** The relay it was live on afterwards, where reported. */
  readonly relayUrl: string | undefined
  /** It was live again on the killed relay (restarted), not on another: where reported, no failover happened. */
  readonly sameRelay: boolean | undefined
}

/** The recoveries of every client that was live on the killed relay at each kill. */
export function failovers(kills: readonly KillEvent[], clients: readonly TimelineSource[], relayUrls: readonly string[]): Failover[] {
  const out: Failover[] = []
  for (const kill of kills) {
    for (const client of clients) {
      const before = [...client.statuses].reverse().find((s) => s.at <= kill.at)
      if (before?.connection !== 'live') continue
      const onKilled = before.relayUrl !== undefined ? before.relayUrl === kill.url : relayUrls[client.home] === kill.url
      if (!onKilled) continue
      const after = client.statuses.find((s) => s.at > kill.at && s.connection === 'live')
      const welcomed = client.statuses.find((s) => s.at > kill.at && (s.connection === 'syncing' || s.connection === 'live'))
      const until = after?.at ?? Number.POSITIVE_INFINITY
      if (client.offlineIntervals.some(([from, to]) => from < until && to > kill.at)) continue
      out.push({
        client: client.name,
        killAt: kill.at,
        ms: after === undefined ? undefined : after.at - kill.at,
        connectedMs: welcomed === undefined ? undefined : welcomed.at - kill.at,
        relayUrl: after?.relayUrl,
        sameRelay: after?.relayUrl === undefined ? undefined : after.relayUrl === kill.url,
      })
    }
  }
  return out
}

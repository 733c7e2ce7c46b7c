/**
 * The relay addresses a client may use: one URL (a single relay, or a load balancer in
 * front of several) or a list the client fails over through, in order. Checked once, at
 * the API boundary (`createClient`, the engine's options), so a typo fails at start with
 * a {@link ConfigError} instead of as an endless reconnect loop.
 */
import { ConfigError } from '../errors'

/** Most relay URLs one client accepts: a failover list, not a directory of nodes. */
export const MAX_RELAY_URLS = 16
/** Longest relay URL accepted (characters). */
export const MAX_RELAY_URL_LENGTH = 2048

/** One relay URL or a failover list of them, as the options take it. */
export type RelayUrlInput = string | readonly string[]

/**
 * The relay URLs in `input` as a list (empty when `input` is undefined: local only).
 * Throws {@link ConfigError} (`CONFIG_INVALID`, `details.issues`) for an empty list, more
 * than {@link MAX_RELAY_URLS} entries, or an entry that is not a `ws:`/`wss:` URL of at
 * most {@link MAX_RELAY_URL_LENGTH} characters. Duplicates are kept once, first place wins.
 */
export function relayUrlList(input: RelayUrlInput | undefined): readonly string[] {
  if (input === undefined) return []
  const list: readonly unknown[] = typeof input === 'string' ? [input] : Array.isArray(input) ? input : [input]
  const issues: string[] = []
  if (list.length === 0) issues.push('the relay URL list is empty; give at least one ws:// or wss:// URL, or omit `url` to work locally only')
  if (list.length > MAX_RELAY_URLS) issues.push(`${list.length} relay URLs given; at most ${MAX_RELAY_URLS} are accepted (put a load balancer in front of larger fleets)`)
  const out: string[] = []
  list.slice(0, MAX_RELAY_URLS).forEach((url, i) => {
    const problem = urlProblem(url)
    if (problem !== undefined) issues.push(`url[${i}]: ${problem}`)
    else if (!out.includes(url as string)) out.push(url as string)
  })
  if (issues.length > 0) throw new ConfigError(`Invalid relay URL option: ${issues.join('; ')}`, { issues })
  return out
}

/** `ws://` or `wss://`, optional user info, a host name or bracketed IPv6 address, optional port, then an optional path/query. */
const RELAY_URL = /^wss?:\/\/(?:[^\s/?#@]+@)?(?:\[[0-9a-f:.]+\]|[^\s/?#:@[\]]+)(?::(\d{1,5}))?(?:[/?#]\S*)?$/i

function urlProblem(url: unknown): string | undefined {
  if (typeof url !== 'string') return `expected a string, got ${url === null ? 'null' : typeof url}`
  if (url.length > MAX_RELAY_URL_LENGTH) return `longer than ${MAX_RELAY_URL_LENGTH} characters`
  const shown = JSON.stringify(url.slice(0, 100))
  if (!/^wss?:\/\//i.test(url)) return `${shown} is not a ws:// or wss:// URL; write it as ws://host:port or wss://host`
  const match = RELAY_URL.exec(url)
  if (match === null) return `${shown} is not a valid ws:// or wss:// URL (host missing or malformed)`
  if (match[1] !== undefined && Number(match[1]) > 65_535) return `${shown} has a port above 65535`
  return undefined
}

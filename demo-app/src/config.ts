/**
 * Where this page syncs to and which local database it uses, read once at start.
 *
 * The relay URL comes from `?relay=`, else the build's `VITE_OUTPOST_URL`, else the
 * relay on this page's host (port `VITE_OUTPOST_PORT`, default 8787), so the same
 * build works on 127.0.0.1, on a LAN address and under test harnesses that pick ports.
 * `?db=` names the local database: two names in one browser behave as two devices.
 */

/** The demo's start-up configuration. */
export interface DemoConfig {
  /** WebSocket URL of the relay. */
  readonly relayUrl: string
  /** Local database (and engine) name. */
  readonly dbName: string
  /** A name given by `?me=`, which replaces the stored "who am I" (handy for scripted demos). */
  readonly meOverride: string | undefined
}

/** The database name used when `?db=` is absent. */
export const DEFAULT_DB_NAME = 'outpost-demo'

/** Reads the configuration from a location (the page's, unless a test passes another). */
export function readConfig(location: Pick<Location, 'search' | 'hostname' | 'protocol'> = window.location): DemoConfig {
  const params = new URLSearchParams(location.search)
  const fromEnv = nonEmpty(import.meta.env.VITE_OUTPOST_URL)
  const port = nonEmpty(import.meta.env.VITE_OUTPOST_PORT) ?? '8787'
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  return {
    relayUrl: nonEmpty(params.get('relay')) ?? fromEnv ?? `${scheme}://${hostForUrl(location.hostname)}:${port}`,
    dbName: nonEmpty(params.get('db')) ?? DEFAULT_DB_NAME,
    meOverride: nonEmpty(params.get('me')),
  }
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined
}

/** IPv6 literals need brackets inside a URL; an empty hostname (file://) means this machine. */
function hostForUrl(hostname: string): string {
  if (hostname === '') return '127.0.0.1'
  return hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname
}

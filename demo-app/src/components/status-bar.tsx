/**
 * The status bar: what a person needs to trust a local-first app — is it connected,
 * which runtime holds the data, how many changes have not reached the relay yet, when
 * it last synced, and whether the data survives closing the browser. Every item carries
 * its raw value in a data attribute so tests read state, not wording.
 */
import { useMemo } from 'react'
import { formatAgo, formatDuration, plural } from '../format'
import { useNow } from '../hooks/use-now'

/** What the status bar shows (the SDK's status, structurally). */
export interface StatusView {
  readonly mode: string
  readonly connection: string
  readonly online: boolean
  readonly pendingWrites: number
  readonly oldestPendingMs: number | null
  readonly lastSyncAt: number | null
  readonly durable: boolean
  readonly lastError: { readonly code: string; readonly message: string } | null
}

/** Props of {@link StatusBar}. */
export interface StatusBarProps {
  /** The SDK's status (a 'connecting' placeholder until the engine first answers). */
  readonly status: StatusView
  readonly relayUrl: string
  readonly dbName: string
  /** Pauses (true) or resumes (false) syncing for this device; writes keep working either way. */
  readonly onSetOffline: (offline: boolean) => void
}

const CONNECTION_LABELS: Readonly<Record<string, string>> = {
  offline: 'Offline',
  connecting: 'Connecting…',
  handshaking: 'Connecting…',
  syncing: 'Syncing…',
  live: 'Live',
  'backing-off': 'Reconnecting…',
  'auth-expired': 'Sign-in expired',
}

const MODE_LABELS: Readonly<Record<string, string>> = {
  'shared-worker': 'Shared worker',
  'leader-tab': 'Leader tab',
  'in-page': 'In page',
}

const MODE_HINTS: Readonly<Record<string, string>> = {
  'shared-worker': 'All tabs share one SharedWorker that owns the data and the connection',
  'leader-tab': 'No SharedWorker here: one tab was elected leader and the others follow it',
  'in-page': 'This tab runs the engine itself',
}

/** Which colour the connection dot takes. */
function tone(connection: string): 'ok' | 'busy' | 'down' {
  if (connection === 'live') return 'ok'
  if (connection === 'offline' || connection === 'auth-expired') return 'down'
  return 'busy'
}

/** The fixed bar at the bottom of the page. */
export function StatusBar({ status, relayUrl, dbName, onSetOffline }: StatusBarProps) {
  const now = useNow(1000)
  // The engine reports the oldest pending write's age when it publishes; anchor it to a
  // time so the label keeps counting between publications.
  const oldestSince = useMemo(() => (status.oldestPendingMs === null ? null : Date.now() - status.oldestPendingMs), [status])
  const pending = status.pendingWrites
  return (
    <footer className="statusbar" data-testid="status-bar">
      <span
        className="status-item status-connection"
        data-testid="status-connection"
        data-state={status.connection}
        data-online={String(status.online)}
        title={status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : `Relay: ${relayUrl}`}
      >
        <span className={`dot dot-${tone(status.connection)}`} aria-hidden="true" />
        {CONNECTION_LABELS[status.connection] ?? status.connection}
      </span>
      <span className="status-item" data-testid="status-mode" data-mode={status.mode} title={MODE_HINTS[status.mode]}>
        {MODE_LABELS[status.mode] ?? status.mode}
      </span>
      <span className={`status-item${pending > 0 ? ' status-warn' : ''}`} data-testid="status-pending" data-count={pending}>
        {pending === 0
          ? 'Nothing waiting to sync'
          : `${plural(pending, 'change')} not yet on the relay${oldestSince === null ? '' : ` (oldest ${formatDuration(Math.max(0, now - oldestSince))})`}`}
      </span>
      <span className="status-item" data-testid="status-last-sync" data-at={status.lastSyncAt ?? ''}>
        {status.lastSyncAt === null ? 'Not synced yet' : `Synced ${formatAgo(status.lastSyncAt, now)}`}
      </span>
      <span
        className={`status-item${status.durable ? '' : ' status-warn'}`}
        data-testid="status-durable"
        data-durable={String(status.durable)}
        title={status.durable ? 'Stored in IndexedDB: survives reloads and restarts' : 'IndexedDB is unavailable: data lives in memory until this tab closes'}
      >
        {status.durable ? 'Saved on this device' : 'Memory only'}
      </span>
      {status.lastError && status.connection !== 'live' ? (
        <span className="status-item status-error" data-testid="status-error" data-code={status.lastError.code} title={status.lastError.message}>
          {status.lastError.message}
        </span>
      ) : null}
      <span className="status-item status-db" data-testid="status-db" title={`Relay: ${relayUrl}`}>
        {dbName}
      </span>
      <button
        type="button"
        className="status-toggle"
        data-testid="offline-toggle"
        aria-pressed={status.connection === 'offline'}
        title={status.connection === 'offline' ? 'Connect to the relay again and sync what changed' : 'Stop syncing; keep working on this device'}
        onClick={() => onSetOffline(status.connection !== 'offline')}
      >
        {status.connection === 'offline' ? 'Go online' : 'Work offline'}
      </button>
    </footer>
  )
}

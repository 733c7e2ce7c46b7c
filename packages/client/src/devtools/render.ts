/**
 * Renders an inspector snapshot as DOM, framework-free. Every value goes in as text
 * (`textContent`), never as markup, so record keys and previews cannot inject anything.
 * Sections and rows carry `data-testid`s for tests and for people who script their tools.
 */
import type { ClientInspectorSnapshot } from '../inspector'

type Child = Node | string | number | null | undefined | false
type Attrs = Readonly<Record<string, string | undefined>>

/** An element with attributes and children (strings become text nodes). */
export function h(tag: string, attrs: Attrs = {}, ...children: readonly Child[]): HTMLElement {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined) el.setAttribute(name, value)
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child)
  }
  return el
}

/** "3.2 s ago", "in 8 s", "now". */
function relative(ms: number, now: number): string {
  const d = now - ms
  const abs = Math.abs(d)
  const text = abs < 1_000 ? `${abs} ms` : abs < 60_000 ? `${(abs / 1_000).toFixed(1)} s` : abs < 3_600_000 ? `${Math.round(abs / 60_000)} min` : `${Math.round(abs / 3_600_000)} h`
  return abs < 50 ? 'now' : d >= 0 ? `${text} ago` : `in ${text}`
}

function clock(ms: number): string {
  const t = new Date(ms)
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`
}

function short(text: string, max = 24): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

function section(testId: string, title: string, summary: string | null, ...body: readonly Child[]): HTMLElement {
  return h('section', { 'data-testid': testId }, h('h3', {}, title, summary === null ? null : h('span', { class: 'summary' }, summary)), ...body)
}

function table(testId: string, head: readonly string[], rows: readonly HTMLElement[], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty', 'data-testid': `${testId}-empty` }, empty)
  return h('table', { 'data-testid': testId }, h('thead', {}, h('tr', {}, ...head.map((c) => h('th', {}, c)))), h('tbody', {}, ...rows))
}

function more(truncated: number): Child {
  return truncated > 0 ? h('p', { class: 'more' }, `… and ${truncated} more`) : null
}

function kv(pairs: readonly (readonly [string, Child, string?])[]): HTMLElement {
  return h('dl', {}, ...pairs.flatMap(([k, v, testId]) => [h('dt', {}, k), h('dd', testId === undefined ? {} : { 'data-testid': testId }, v)]))
}

/** The panel's body for `s`. */
export function renderSnapshot(s: ClientInspectorSnapshot): HTMLElement {
  const now = s.at
  const c = s.connection
  const runtime = section(
    'inspector-runtime',
    'Runtime',
    null,
    kv([
      ['mode', s.runtime.mode, 'inspector-mode'],
      ['storage', `${s.runtime.storage ?? 'opening'}${s.runtime.durable ? ' (durable)' : ' (memory only: lost when the engine stops)'}`, 'inspector-storage'],
      ['database', s.runtime.database],
      ['replica', s.runtime.replicaId ?? '—'],
      ['clock offset', `${Math.round(s.runtime.clockOffsetMs)} ms`],
    ]),
  )
  const connection = section(
    'inspector-connection',
    'Connection',
    null,
    kv([
      ['state', h('span', { class: `state state-${c.state}`, 'data-testid': 'inspector-connection-state', 'data-state': c.state }, c.state)],
      ['relay', c.relayUrl ?? 'none (local only)'],
      ['last sync', c.lastSyncAt === null ? 'never' : relative(c.lastSyncAt, now)],
      ['last error', c.lastError === null ? '—' : `${c.lastError.code}: ${c.lastError.message}`],
    ]),
    h(
      'ol',
      { class: 'transitions', 'data-testid': 'inspector-transitions', reversed: '' },
      ...[...c.transitions].reverse().map((t) =>
        h('li', { 'data-to': t.to }, h('time', {}, clock(t.at)), ` ${t.from} → `, h('strong', {}, t.to), t.error === undefined ? null : h('span', { class: 'error' }, ` ${t.error.code}`)),
      ),
    ),
  )
  const o = s.outbox
  const outbox = section(
    'inspector-outbox',
    'Outbox',
    `${o.pending} pending${o.oldestPendingMs === null ? '' : `, oldest ${relative(now - o.oldestPendingMs, now)}`}`,
    table(
      'inspector-outbox-table',
      ['op', 'map / key', 'write', 'age', ''],
      o.entries.map((w) =>
        h(
          'tr',
          { 'data-testid': 'inspector-outbox-row', 'data-op-id': String(w.opId), 'data-map': w.map, 'data-key': w.key },
          h('td', {}, `#${w.opId}`),
          h('td', { title: `${w.map}/${w.key}` }, `${short(w.map, 16)} / ${short(w.key)}`),
          h('td', { title: w.preview }, h('code', {}, w.op), ' ', h('span', { class: 'preview' }, w.preview)),
          h('td', {}, relative(w.at, now)),
          h('td', {}, w.sent ? 'sent' : 'queued'),
        ),
      ),
      'Nothing waiting for the relay.',
    ),
    more(o.truncated),
  )
  const r = s.rejected
  const rejected = section(
    'inspector-rejected',
    'Refused by the relay',
    `${r.count} since this database was created`,
    table(
      'inspector-rejected-table',
      ['op', 'map / key', 'error', 'when'],
      r.entries.map((x) =>
        h(
          'tr',
          { 'data-testid': 'inspector-rejected-row', 'data-key': x.key },
          h('td', {}, `#${x.opId}`),
          h('td', {}, `${short(x.map, 16)} / ${short(x.key)}`),
          h('td', { class: 'error' }, `${x.error.code}: ${x.error.message}`),
          h('td', {}, relative(x.at, now)),
        ),
      ),
      'No write was refused.',
    ),
    more(r.truncated),
  )
  const maps = section(
    'inspector-maps',
    'Maps',
    null,
    table(
      'inspector-maps-table',
      ['map', 'kind', 'records', 'stored', 'in memory'],
      s.maps.entries.map((m) =>
        h(
          'tr',
          { 'data-testid': 'inspector-map-row', 'data-map': m.map },
          h('td', {}, short(m.map, 32)),
          h('td', {}, m.kind),
          h('td', { 'data-testid': 'inspector-map-records' }, m.records === null ? '—' : m.records),
          h('td', {}, m.stored),
          h('td', {}, m.loaded ? 'yes' : 'no'),
        ),
      ),
      'No map yet.',
    ),
    more(s.maps.truncated),
  )
  const shapes = section(
    'inspector-shapes',
    'Shapes',
    null,
    table(
      'inspector-shapes-table',
      ['shape', 'members', 'Merkle root', 'cursor', 'sync'],
      s.shapes.entries.map((x) => {
        const { map, ...rest } = x.shape
        const filter = Object.keys(rest).length === 0 ? 'whole map' : JSON.stringify(rest)
        return h(
          'tr',
          { 'data-testid': 'inspector-shape-row', 'data-map': map, 'data-sync': x.sync },
          h('td', { title: x.id }, h('strong', {}, map), ' ', h('span', { class: 'preview' }, short(filter, 60))),
          h('td', {}, x.members),
          h('td', {}, h('code', {}, x.root)),
          h('td', { title: x.cursor ?? '' }, x.cursor === null ? 'none' : h('code', {}, short(x.cursor, 20))),
          h('td', {}, h('span', { class: `state state-${x.sync}` }, x.sync)),
        )
      }),
      'No shape replicated.',
    ),
    more(s.shapes.truncated),
  )
  const locks = section(
    'inspector-locks',
    'Locks held',
    null,
    table(
      'inspector-locks-table',
      ['lock', 'fencing token', 'expires'],
      s.locks.entries.map((l) => h('tr', { 'data-testid': 'inspector-lock-row', 'data-lock': l.name }, h('td', {}, short(l.name, 40)), h('td', {}, h('code', {}, l.token)), h('td', {}, relative(l.expiresAt, now)))),
      'No lease held.',
    ),
  )
  const topics = section(
    'inspector-topics',
    'Topics and presence',
    null,
    table(
      'inspector-topics-table',
      ['topic', 'subscriptions'],
      s.topics.entries.map((t) => h('tr', { 'data-testid': 'inspector-topic-row' }, h('td', {}, short(t.topic, 48)), h('td', {}, t.subscribers))),
      'No topic subscribed.',
    ),
    ...s.presence.map((p) =>
      h(
        'div',
        { class: 'presence', 'data-testid': 'inspector-presence', 'data-room': p.room },
        h('strong', {}, `presence: ${p.room}`),
        h('ul', {}, ...p.members.map((m) => h('li', {}, short(m.id, 28), m.self ? ' (this tab)' : '', ` · seen ${relative(m.lastSeen, Date.now())}`, ' ', h('span', { class: 'preview' }, short(JSON.stringify(m.state), 60))))),
      ),
    ),
  )
  return h('div', { class: 'body' }, connection, outbox, rejected, shapes, maps, locks, topics, runtime)
}

// @vitest-environment happy-dom
/**
 * `client.inspector` and the `@outpost/client/devtools` panel, mounted for real (happy-dom,
 * the SDK in in-page mode on fake-indexeddb): the snapshot carries this tab's presence
 * rooms; the panel renders the outbox, maps and connection live while open, shows keys as
 * text (never markup), reads nothing while closed, and removes itself on destroy.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createClient, type OutpostClient } from '../src/index'
import { mountInspector, type InspectorPanel } from '../src/devtools/index'
import { freshDb } from './helpers'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function open(): OutpostClient {
  const db = freshDb('devtools')
  const client = createClient({ name: db.name, mode: 'in-page', engine: { indexedDB: db.indexedDB } })
  cleanups.push(() => client.close())
  return client
}

function mount(client: OutpostClient, options: Parameters<typeof mountInspector>[1] = {}): InspectorPanel {
  const panel = mountInspector(client, options)
  cleanups.push(() => panel.destroy())
  return panel
}

/** Polls `check` (DOM updates arrive through the engine's throttled feed). */
async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

function q(panel: InspectorPanel, testId: string): Element[] {
  return [...(panel.element.shadowRoot?.querySelectorAll(`[data-testid="${testId}"]`) ?? [])]
}

describe('client.inspector', () => {
  it('adds the presence rooms this tab joined to the engine snapshot', async () => {
    const client = open()
    const presence = client.presence('board', { name: 'Kim' })
    cleanups.push(() => presence.leave())
    await client.map('tasks').set('t1', { title: 'one' })
    const snapshot = await client.inspector.snapshot()
    expect(snapshot.runtime.mode).toBe('in-page')
    expect(snapshot.connection.relayUrl).toBeNull()
    expect(snapshot.maps.entries).toContainEqual({ kind: 'lww', map: 'tasks', loaded: true, stored: 1, records: 1 })
    expect(snapshot.outbox.entries.map((w) => w.key)).toEqual(['t1'])
    expect(snapshot.presence).toEqual([{ room: 'board', self: presence.id, members: [expect.objectContaining({ id: presence.id, self: true, state: { name: 'Kim' } })] }])
    expect(snapshot.topics.entries).toContainEqual({ topic: 'presence:board', subscribers: 1, presenceRoom: 'board' })
  })
})

describe('the devtools panel', () => {
  it('renders the outbox and maps live while open, keys as text', async () => {
    const client = open()
    const panel = mount(client, { launcher: false })
    expect(q(panel, 'outpost-inspector')[0]?.hasAttribute('hidden')).toBe(true)
    expect(panel.toggle()).toBe(true)
    expect(q(panel, 'outpost-inspector')[0]?.hasAttribute('hidden')).toBe(false)
    await until('the first render', () => q(panel, 'inspector-connection').length === 1)
    expect(q(panel, 'inspector-outbox-table-empty')).toHaveLength(1)
    expect(q(panel, 'inspector-mode')[0]?.textContent).toBe('in-page')

    const hostile = '<img src=x onerror="globalThis.pwned=1">'
    await client.map('tasks').set(hostile, { title: 'Buy milk' })
    await until('the write in the outbox', () => q(panel, 'inspector-outbox-row').length === 1)
    const row = q(panel, 'inspector-outbox-row')[0] as HTMLElement
    expect(row.dataset['key']).toBe(hostile)
    expect(row.textContent).toContain('set title')
    expect(row.textContent).toContain('"Buy milk"')
    expect(panel.element.shadowRoot?.querySelector('img')).toBeNull()
    const tasks = q(panel, 'inspector-map-row').find((el) => (el as HTMLElement).dataset['map'] === 'tasks')
    expect(tasks?.querySelector('[data-testid="inspector-map-records"]')?.textContent).toBe('1')
  })

  it('reads nothing while closed, and destroy removes it', async () => {
    const client = open()
    const panel = mount(client)
    const launcher = q(panel, 'inspector-launcher')[0] as HTMLButtonElement
    launcher.click()
    expect(panel.isOpen).toBe(true)
    await until('the first render', () => q(panel, 'inspector-connection').length === 1)
    ;(q(panel, 'inspector-close')[0] as HTMLButtonElement).click()
    expect(panel.isOpen).toBe(false)
    expect(launcher.getAttribute('aria-expanded')).toBe('false')
    // Closed: a write does not reach the panel.
    await client.map('tasks').set('t1', { title: 'one' })
    await new Promise((r) => setTimeout(r, 1_300))
    expect(q(panel, 'inspector-outbox-row')).toHaveLength(0)
    panel.destroy()
    expect(document.querySelector('[data-outpost-inspector]')).toBeNull()
  })
})

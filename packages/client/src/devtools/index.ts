/**
 * `@outpost/client/devtools`: an in-page inspector panel, framework-free (plain DOM in a
 * shadow root, so the app's styles and the panel's never mix).
 *
 * ```ts
 * import { mountInspector } from '@outpost/client/devtools'
 * const panel = mountInspector(client)   // a small "Outpost" button opens it
 * panel.toggle()                          // or drive it from your own button
 * ```
 *
 * The panel shows what the engine hides: the connection's state machine and its recent
 * transitions, the outbox (pending writes, and writes the relay refused with their errors),
 * shapes with cursor, Merkle root and sync state, maps and record counts, lock leases with
 * fencing tokens, topics and presence, the runtime mode and storage. It reads through
 * `client.inspector`, which changes nothing in the engine, and only while it is open.
 *
 * @module @outpost/client/devtools
 */
import type { OutpostError } from '@outpost/core'
import type { ClientInspector, ClientInspectorSnapshot } from '../inspector'
import { h, renderSnapshot } from './render'
import { PANEL_CSS } from './styles'

/** Options of {@link mountInspector}. */
export interface InspectorPanelOptions {
  /** Open at once (default false). */
  readonly open?: boolean
  /** Show a small floating button that toggles the panel (default true). */
  readonly launcher?: boolean
  /** Where the panel's host element goes (default `document.body`). */
  readonly container?: HTMLElement
  /** Called when the panel opens or closes (from its own buttons too), e.g. to keep your toggle in step. */
  readonly onChange?: (open: boolean) => void
}

/** A mounted panel. */
export interface InspectorPanel {
  /** True while the panel is shown (and reading). */
  readonly isOpen: boolean
  /** The host element (its shadow root holds the panel). */
  readonly element: HTMLElement
  open(): void
  close(): void
  /** Opens or closes the panel; returns whether it is now open. */
  toggle(): boolean
  /** Removes the panel and stops reading. Idempotent. */
  destroy(): void
}

/** Mounts the inspector panel for `client` (anything with an `inspector`, e.g. an `OutpostClient`). */
export function mountInspector(client: { readonly inspector: ClientInspector }, options: InspectorPanelOptions = {}): InspectorPanel {
  const host = h('div', { 'data-outpost-inspector': '' })
  const root = host.attachShadow({ mode: 'open' })
  const style = document.createElement('style')
  style.textContent = PANEL_CSS
  const content = h('div', { class: 'content', 'data-testid': 'inspector-content' }, h('p', { class: 'empty' }, 'Reading the engine…'))
  const closeButton = h('button', { type: 'button', class: 'close', 'aria-label': 'Close the inspector', 'data-testid': 'inspector-close' }, '×')
  const panel = h(
    'aside',
    { class: 'panel', role: 'complementary', 'aria-label': 'Outpost inspector', 'data-testid': 'outpost-inspector', hidden: '' },
    h('header', {}, h('h2', {}, 'Outpost inspector'), h('span', { class: 'read-only' }, 'read-only'), closeButton),
    content,
  )
  root.append(style, panel)
  let launcher: HTMLElement | undefined
  if (options.launcher !== false) {
    launcher = h('button', { type: 'button', class: 'launcher', 'aria-expanded': 'false', 'data-testid': 'inspector-launcher' }, 'Outpost')
    root.append(launcher)
  }
  ;(options.container ?? document.body).append(host)

  let unsubscribe: (() => void) | undefined
  let destroyed = false

  const show = (snapshot: ClientInspectorSnapshot): void => {
    const scroll = content.scrollTop
    content.replaceChildren(renderSnapshot(snapshot))
    content.scrollTop = scroll
  }
  const showError = (error: OutpostError): void => {
    content.replaceChildren(h('p', { class: 'error', 'data-testid': 'inspector-error' }, `${error.code}: ${error.message}`))
  }

  const api: InspectorPanel = {
    get isOpen() {
      return unsubscribe !== undefined
    },
    element: host,
    open() {
      if (destroyed || unsubscribe !== undefined) return
      panel.removeAttribute('hidden')
      launcher?.setAttribute('aria-expanded', 'true')
      unsubscribe = client.inspector.subscribe(show, showError)
      options.onChange?.(true)
    },
    close() {
      if (unsubscribe === undefined) return
      unsubscribe()
      unsubscribe = undefined
      panel.setAttribute('hidden', '')
      launcher?.setAttribute('aria-expanded', 'false')
      options.onChange?.(false)
    },
    toggle() {
      if (unsubscribe === undefined) api.open()
      else api.close()
      return api.isOpen
    },
    destroy() {
      if (destroyed) return
      api.close()
      destroyed = true
      host.remove()
    },
  }
  closeButton.addEventListener('click', () => api.close())
  launcher?.addEventListener('click', () => api.toggle())
  if (options.open === true) api.open()
  return api
}

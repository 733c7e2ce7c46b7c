/**
 * The "Inspector" button: mounts `@outpost/client/devtools`' panel (framework-free, in its
 * own shadow root) for this page's client and opens or closes it. The panel reads the
 * engine only while it is open, and reading changes nothing.
 */
import { useEffect, useRef, useState } from 'react'
import { useClient } from '@outpost/client/react'
import { mountInspector, type InspectorPanel } from '@outpost/client/devtools'

/** A toolbar button that toggles the inspector panel. */
export function InspectorToggle() {
  const client = useClient()
  const panel = useRef<InspectorPanel | null>(null)
  const [open, setOpen] = useState(false)
  useEffect(() => {
    const mounted = mountInspector(client, {
      launcher: false,
      onChange: (isOpen) => {
        setOpen(isOpen)
        // The board makes room for the docked panel (styles.css), so every button stays reachable.
        document.documentElement.classList.toggle('inspector-open', isOpen)
      },
    })
    panel.current = mounted
    return () => {
      mounted.destroy()
      panel.current = null
      document.documentElement.classList.remove('inspector-open')
    }
  }, [client])
  return (
    <button type="button" className="how-toggle" data-testid="inspector-toggle" aria-pressed={open} onClick={() => panel.current?.toggle()}>
      Inspector
    </button>
  )
}

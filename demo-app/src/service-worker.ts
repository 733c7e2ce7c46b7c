/**
 * Registers the app-shell service worker (built from `sw/sw.js` by vite.config.ts) so a
 * reload with the network off still opens the app. Only production builds have one; in
 * `vite dev` a cached shell would hide code changes.
 */

/** Registers `sw.js` next to the page; a failure only costs offline start-up, so it is logged, not thrown. */
export function registerServiceWorker(): void {
  if (!import.meta.env.PROD || !('serviceWorker' in navigator)) return
  navigator.serviceWorker.register(new URL('./sw.js', window.location.href)).catch(reportRegistrationFailure)
}

function reportRegistrationFailure(error: unknown): void {
  console.warn('Outpost demo: the offline app shell is unavailable (service worker not registered)', error)
}

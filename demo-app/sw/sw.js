/*
 * Outpost Tasks' service worker: keeps the app shell available offline.
 *
 * The build (vite.config.ts) fills in PRECACHE with every file it produced and VERSION
 * with a hash of that list. On install the whole shell is cached, so the very first
 * visit is enough for a reload with the network off to open the app; its data then
 * comes from IndexedDB through the Outpost engine, not from here.
 *
 * Strategy: hashed build files are immutable, so they are served cache-first. The page
 * itself (any navigation, whatever its ?relay= / ?db= query) is served from the cache
 * at once and refreshed in the background (stale-while-revalidate), so a new deploy is
 * picked up on the next load without ever blocking an offline start.
 */
const PRECACHE = __PRECACHE__
const VERSION = __VERSION__
const CACHE = `outpost-demo-shell-${VERSION}`
const SHELL = new URL('./', self.location.href).href

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      // `cache: 'reload'` bypasses the HTTP cache so the shell matches this build.
      .then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: 'reload' }))))
      .then(() => self.skipWaiting()),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key.startsWith('outpost-demo-shell-') && key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  )
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET') return
  const url = new URL(request.url)
  // The relay (another origin or port) and anything not ours go straight to the network.
  if (url.origin !== self.location.origin) return

  if (request.mode === 'navigate') {
    event.respondWith(serveShell(event))
    return
  }
  event.respondWith(serveAsset(request))
})

/** The page: cached copy at once, network refresh in the background; network when nothing is cached. */
async function serveShell(event) {
  const cache = await caches.open(CACHE)
  const cached = await cache.match(SHELL, { ignoreVary: true })
  if (cached) {
    const refresh = fetch(SHELL, { cache: 'no-cache' }).then((response) => (response.ok ? cache.put(SHELL, response) : undefined))
    event.waitUntil(refresh.catch(ignoreOfflineRefresh))
    return cached
  }
  try {
    return await fetch(event.request)
  } catch (error) {
    return offlinePage(error)
  }
}

/** Build files: from the cache when present, else from the network (and kept for next time). */
async function serveAsset(request) {
  const cache = await caches.open(CACHE)
  const cached = await cache.match(request, { ignoreSearch: true, ignoreVary: true })
  if (cached) return cached
  const response = await fetch(request)
  if (response.ok && response.type === 'basic') await cache.put(request, response.clone())
  return response
}

/** A background refresh fails whenever the network is off; the cached page already answered. */
function ignoreOfflineRefresh() {}

function offlinePage(error) {
  const body = `<!doctype html><meta charset="utf-8"><title>Outpost Tasks</title><p style="font:16px system-ui;margin:3rem">You are offline and this app has not been opened here before. Connect once, then it works offline. (${String(error)})</p>`
  return new Response(body, { status: 503, headers: { 'content-type': 'text/html; charset=utf-8' } })
}

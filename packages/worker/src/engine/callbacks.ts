/**
 * App callbacks (live-query rows, status, write progress, topic events) are called through
 * {@link safeCall}: a callback that throws, or a closed tab's comlink proxy that rejects,
 * must never disturb the engine or the other subscribers.
 */

/** Reports an error from an app callback (e.g. a closed tab's proxy) without disturbing other subscribers. */
function onCallbackError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] a subscriber callback failed; other subscribers are unaffected', error)
}

/** Calls `fn(value)`; a throw or a rejected promise is reported, never propagated. */
export function safeCall<T>(fn: (value: T) => unknown, value: T): void {
  try {
    const r = fn(value)
    if (r instanceof Promise) r.catch(onCallbackError)
  } catch (error) {
    onCallbackError(error)
  }
}

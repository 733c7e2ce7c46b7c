/** The raw SharedWorker baseline: echoes every message back to the port it came from. */
const scope = globalThis as unknown as { onconnect: ((event: MessageEvent) => void) | null }
scope.onconnect = (event: MessageEvent) => {
  const port = event.ports[0]
  if (port === undefined) return
  port.onmessage = (message: MessageEvent) => port.postMessage(message.data)
}

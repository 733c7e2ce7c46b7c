/**
 * What the Chromium profile scripts share: a persistent-profile Chromium with its DevTools
 * endpoint open, a minimal Chrome DevTools Protocol client with flat sessions, and a CPU
 * profiler attached to the page's SharedWorker.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import WebSocket from 'ws'
import { CHROMIUM_PATH } from '../lib/browser'
import type { CpuProfile } from './cpu-profile'

/** A minimal CDP client over the browser's WebSocket endpoint, with flat sessions. */
export class Cdp {
  #next = 1
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  constructor(readonly socket: WebSocket) {
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } }
      if (message.id === undefined) return
      const waiter = this.#pending.get(message.id)
      this.#pending.delete(message.id)
      if (message.error !== undefined) waiter?.reject(new Error(message.error.message))
      else waiter?.resolve(message.result)
    })
  }
  send<T>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    const id = this.#next++
    this.socket.send(JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }))
    return new Promise<T>((resolve, reject) => this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject }))
  }
}

/** Chromium on a persistent profile in `profileDir` (IndexedDB on disk), with a CDP client on its DevTools endpoint. */
export async function launchWithCdp(profileDir: string): Promise<{ context: BrowserContext; cdp: Cdp }> {
  const context = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM_PATH, headless: true, args: ['--no-sandbox', '--disable-gpu', '--remote-debugging-port=0', '--disable-background-timer-throttling', '--disable-renderer-backgrounding'] })
  const [port, path] = (await readFile(join(profileDir, 'DevToolsActivePort'), 'utf8')).trim().split('\n')
  const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  await new Promise((resolve) => socket.once('open', resolve))
  return { context, cdp: new Cdp(socket) }
}

/** Attaches to the first SharedWorker target that appears and starts its profiler. */
export async function profileWorker(cdp: Cdp): Promise<{ stop(): Promise<CpuProfile> }> {
  for (;;) {
    const { targetInfos } = await cdp.send<{ targetInfos: { targetId: string; type: string }[] }>('Target.getTargets')
    const worker = targetInfos.find((t) => t.type === 'shared_worker')
    if (worker !== undefined) {
      const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', { targetId: worker.targetId, flatten: true })
      await cdp.send('Profiler.enable', {}, sessionId)
      await cdp.send('Profiler.setSamplingInterval', { interval: 200 }, sessionId)
      await cdp.send('Profiler.start', {}, sessionId)
      return {
        stop: async () => {
          const { profile } = await cdp.send<{ profile: CpuProfile }>('Profiler.stop', {}, sessionId)
          // Detached, so the worker can stop once its last tab closes (a cold start needs a new one).
          await cdp.send('Target.detachFromTarget', { sessionId })
          return profile
        },
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

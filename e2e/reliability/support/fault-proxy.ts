/**
 * A WebSocket proxy between devices and the relay that misbehaves on purpose, frame by
 * frame, from a seeded PRNG: it drops, duplicates, reorders and delays frames, resets
 * connections, and blackholes them (stops delivering in both directions without closing,
 * as a dead NAT mapping or a sleeping radio does). `heal()` turns every fault off and lets
 * held frames through, so a scenario can then ask whether everything converged on its own.
 *
 * Frames are whole WebSocket messages (the unit the protocol speaks), so a dropped frame
 * is a lost message, never a corrupt one; the relay's and the engine's timeouts, retries
 * and Merkle repair are what must make up for it. A blackhole holds frames instead of
 * losing them: when it heals, a connection that is still open delivers what was held, in
 * order, as TCP's retransmission would; a device that gave up on it in the meantime has
 * closed it. (A *drop* inside a connection that stays open is something TCP never does;
 * it stands for a middlebox or relay that loses a message.)
 */
import { WebSocket, WebSocketServer, type RawData } from 'ws'

/** Per-frame fault probabilities (each in [0, 1]) and the delay range. */
export interface FaultRates {
  readonly drop: number
  readonly duplicate: number
  /** Hold a frame back and deliver it after the next one on the same lane. */
  readonly reorder: number
  /** Delay the lane (later frames wait behind it) by up to `maxDelayMs`. */
  readonly delay: number
  readonly maxDelayMs: number
  /** Reset the connection (both sockets terminated, no close frame). */
  readonly reset: number
  /** Stop delivering anything on this connection, both ways, without closing it. */
  readonly blackhole: number
}

/** No faults. */
export const NO_FAULTS: FaultRates = Object.freeze({ drop: 0, duplicate: 0, reorder: 0, delay: 0, maxDelayMs: 0, reset: 0, blackhole: 0 })

/** What the proxy did, for the scenario's figures. */
export interface FaultCounts {
  connections: number
  frames: number
  dropped: number
  duplicated: number
  reordered: number
  delayed: number
  resets: number
  blackholes: number
}

/** A running proxy. */
export interface FaultProxy {
  /** `ws://127.0.0.1:<port>`: what devices connect to. */
  readonly url: string
  /** Sets the fault rates for frames from now on (open connections included). */
  setFaults(rates: FaultRates): void
  /** Faults off; blackholed connections deliver again; held frames go out. */
  heal(): void
  /** Resets every open connection (what a relay crash looks like from the device). */
  resetAll(): void
  readonly counts: Readonly<FaultCounts>
  close(): Promise<void>
}

/** One direction of one connection. */
class Lane {
  #held: RawData | undefined
  /** Frames that arrived while the link was blackholed, delivered if it heals while open. */
  #stalled: RawData[] = []
  #chain: Promise<void> = Promise.resolve()

  constructor(
    private readonly to: WebSocket,
    private readonly link: Link,
    readonly direction: 'up' | 'down',
  ) {}

  push(data: RawData): void {
    const { proxy } = this.link
    const rates = proxy.rates
    proxy.counts.frames++
    if (this.link.blackholed) {
      this.#stalled.push(data)
      return
    }
    const r = proxy.random
    if (r() < rates.reset) {
      proxy.counts.resets++
      this.link.reset()
      return
    }
    if (r() < rates.blackhole) {
      proxy.counts.blackholes++
      this.link.blackholed = true
      this.#stalled.push(data)
      return
    }
    if (r() < rates.drop) {
      proxy.counts.dropped++
      proxy.onFault?.('drop', this.direction, data)
      return
    }
    const copies = r() < rates.duplicate ? 2 : 1
    if (copies === 2) proxy.counts.duplicated++
    const delayMs = r() < rates.delay ? Math.floor(r() * rates.maxDelayMs) : 0
    if (delayMs > 0) proxy.counts.delayed++
    if (this.#held === undefined && r() < rates.reorder) {
      proxy.counts.reordered++
      this.#held = data
      return
    }
    const held = this.#held
    this.#held = undefined
    this.#chain = this.#chain.then(async () => {
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
      for (let i = 0; i < copies; i++) this.#send(data)
      if (held !== undefined) this.#send(held)
    })
  }

  /** Lets held-back and stalled frames through, in arrival order (on heal, after the link is unblocked). */
  flush(): void {
    const frames = this.#held === undefined ? this.#stalled : [this.#held, ...this.#stalled]
    this.#held = undefined
    this.#stalled = []
    if (frames.length > 0) this.#chain = this.#chain.then(() => frames.forEach((data) => this.#send(data)))
  }

  #send(data: RawData): void {
    // A frame queued on the chain before the blackhole began waits for the heal too.
    if (this.link.blackholed) {
      this.#stalled.push(data)
      return
    }
    if (this.to.readyState !== WebSocket.OPEN) return
    this.to.send(data as Buffer, { binary: true })
  }
}

/** One device connection and its upstream connection to the relay. */
class Link {
  blackholed = false
  readonly up: Lane
  readonly down: Lane

  constructor(
    readonly proxy: ProxyState,
    readonly device: WebSocket,
    readonly relay: WebSocket,
  ) {
    this.up = new Lane(relay, this, 'up')
    this.down = new Lane(device, this, 'down')
  }

  reset(): void {
    this.device.terminate()
    this.relay.terminate()
  }
}

interface ProxyState {
  rates: FaultRates
  readonly onFault: FaultListener | undefined
  readonly random: () => number
  readonly counts: FaultCounts
}

/** Told of every dropped frame (`up`: device → relay), e.g. to log what a lost frame was. */
export type FaultListener = (fault: 'drop', direction: 'up' | 'down', frame: RawData) => void

/** Starts a proxy on 127.0.0.1 (a free port) to `targetUrl`, drawing every fault from `random`. */
export async function startFaultProxy(targetUrl: string, random: () => number, onFault?: FaultListener): Promise<FaultProxy> {
  const state: ProxyState = {
    rates: NO_FAULTS,
    onFault,
    random,
    counts: { connections: 0, frames: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0, resets: 0, blackholes: 0 },
  }
  const links = new Set<Link>()
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  server.on('connection', (device) => {
    state.counts.connections++
    const relay = new WebSocket(targetUrl, { perMessageDeflate: false })
    const link = new Link(state, device, relay)
    links.add(link)
    // Frames a device sends before the relay side is open wait in order (no fault skipped).
    const early: RawData[] = []
    device.on('message', (data) => (relay.readyState === WebSocket.OPEN ? link.up.push(data) : early.push(data)))
    relay.on('open', () => {
      for (const data of early.splice(0)) link.up.push(data)
    })
    relay.on('message', (data) => link.down.push(data))
    const end = (): void => {
      links.delete(link)
      // A relay that went away looks to the device like a dropped connection, as it does without a proxy.
      if (device.readyState === WebSocket.OPEN || device.readyState === WebSocket.CONNECTING) device.terminate()
      if (relay.readyState === WebSocket.OPEN || relay.readyState === WebSocket.CONNECTING) relay.terminate()
    }
    // A blackholed link stays open until the device gives up on it (its liveness timeout).
    device.on('close', end)
    relay.on('close', end)
    device.on('error', end)
    relay.on('error', end)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the fault proxy has no port')
  return {
    url: `ws://127.0.0.1:${address.port}`,
    counts: state.counts,
    setFaults: (rates) => {
      state.rates = rates
    },
    heal: () => {
      state.rates = NO_FAULTS
      for (const link of links) {
        link.blackholed = false
        link.up.flush()
        link.down.flush()
      }
    },
    resetAll: () => {
      for (const link of links) link.reset()
    },
    close: async () => {
      for (const link of links) link.reset()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

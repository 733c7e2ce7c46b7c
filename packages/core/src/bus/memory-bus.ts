/**
 * {@link Bus} in memory: several relays in one process share one {@link MemoryBusHub}, each
 * with a {@link MemoryBus} of its own. For tests (and a single process that runs several
 * relays). It keeps every guarantee of the interface; {@link MemoryBus.cut} and
 * {@link MemoryBus.restore} simulate losing and regaining the connection: while cut, an
 * instance neither sends nor receives, and what others publish meanwhile is lost to it.
 */
import { BusBase, type BusBaseOptions } from './bus-base'
import type { BusItem } from './frame'

/** The shared "network" of {@link MemoryBus} instances. */
export class MemoryBusHub {
  readonly #members = new Set<MemoryBus>()
  #next = 0

  /** Joins the hub: a new, connected instance (one per relay). */
  open(options: BusBaseOptions = {}): MemoryBus {
    const bus = new MemoryBus(this, `memory-${++this.#next}`, options)
    this.#members.add(bus)
    return bus
  }

  /** Instances open on this hub (closing one removes it). */
  get size(): number {
    return this.#members.size
  }

  /** True while `bus` is open on this hub. */
  has(bus: MemoryBus): boolean {
    return this.#members.has(bus)
  }

  /** @internal Queues `item` for every other open member. */
  broadcast(from: MemoryBus, item: BusItem): void {
    for (const member of this.#members) if (member !== from) member.enqueue(from.node, item)
  }

  /** @internal */
  leave(bus: MemoryBus): void {
    this.#members.delete(bus)
  }
}

/** One relay's instance on a {@link MemoryBusHub}; create it with {@link MemoryBusHub.open}. */
export class MemoryBus extends BusBase {
  /** Always `'memory'`. */
  readonly name = 'memory'
  readonly #hub: MemoryBusHub
  readonly #inbox: { node: string; item: BusItem }[] = []
  #draining = false

  /** @internal Use {@link MemoryBusHub.open}. */
  constructor(hub: MemoryBusHub, node: string, options: BusBaseOptions) {
    super(node, options)
    this.#hub = hub
    this.connectionEvent('connected')
  }

  /** Simulates losing the connection: publishes are refused and what others publish is lost to this instance until {@link restore}. */
  cut(): void {
    this.#inbox.length = 0
    this.connectionEvent('lost', 'connection cut (simulated)')
  }

  /** Simulates the connection coming back: emits `reconnected`. */
  restore(): void {
    this.connectionEvent('connected')
  }

  protected transmit(item: BusItem): Promise<void> {
    this.#hub.broadcast(this, item)
    return Promise.resolve()
  }

  protected release(): Promise<void> {
    this.#hub.leave(this)
    this.#inbox.length = 0
    return Promise.resolve()
  }

  /** @internal Called by the hub: queued in publish order, delivered on a later microtask. */
  enqueue(node: string, item: BusItem): void {
    if (this.state !== 'connected') return
    this.#inbox.push({ node, item })
    if (this.#draining) return
    this.#draining = true
    void Promise.resolve().then(() => {
      this.#draining = false
      for (const { node: from, item: next } of this.#inbox.splice(0)) {
        if (this.state !== 'connected') return
        this.deliver(from, [next])
      }
    })
  }
}

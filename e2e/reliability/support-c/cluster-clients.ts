/**
 * SDK clients of the cluster scenario: in-page engines on fake-indexeddb with `ws` sockets,
 * spread over the relays, each syncing the whole scenario map, writing at random (seeded),
 * going offline now and then, and keeping a ledger of what it wrote and which writes the
 * relay acknowledged (`persisted` resolved). The ledger is what "no acknowledged write
 * lost" is checked against.
 *
 * Writes, per client (`w_<client>` is that client's own field; only it writes there, with a
 * number that grows with every write of the client, so the field's final value must be the
 * largest the client wrote to that key, and at least the largest acknowledged):
 * - `update(k<i>, { w_<client>: n })` — the ledger's writes;
 * - `update(k<i>, { last: '<client>:<n>' })` — one field every client fights over;
 * - `set(s<i>, { v: n, by })` or `delete(s<i>)` — churn with tombstones.
 * The last two are checked by agreement (every client equals the store), not by the ledger.
 */
import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import WebSocket from 'ws'
import { createClient, type ClientStatus, type OutpostClient, type RecordValue } from '@outpost/client'

/** The map every client writes and syncs. */
export const SCENARIO_MAP = 'c1'

/** One timestamped status change of a client. */
export interface StatusSample {
  readonly at: number
  readonly connection: ClientStatus['connection']
  /** The relay the client uses (`status.relayUrl`), undefined when it names none. */
  readonly relayUrl: string | undefined
}

/** A scenario client and its ledger. */
export class ClusterClient {
  readonly name: string
  /** Index of the relay it was given first. */
  readonly home: number
  readonly client: OutpostClient
  readonly statuses: StatusSample[] = []
  /** Largest `n` written to `w_<name>` per key, and the largest acknowledged. */
  readonly written = new Map<string, number>()
  readonly acked = new Map<string, number>()
  writes = 0
  ackedWrites = 0
  /** Writes the relay refused for good (must stay 0: every write here is valid). */
  refused = 0
  /** True inside an offline window. */
  offline = false
  /** The offline windows so far ([from, to] ms since epoch; `to` is Infinity while one lasts). */
  readonly offlineIntervals: [number, number][] = []
  readonly #persisted = new Set<Promise<void>>()
  #n = 0
  readonly #stopStatus: () => void

  /** `sync`: replicate the scenario map (the writers); lock clients only need the connection. */
  constructor(name: string, home: number, urls: readonly string[], sync = true) {
    this.name = name
    this.home = home
    this.client = createClient({
      name: `${name}-${process.pid}`,
      // In order of preference: the SDK moves to the next at once when one fails.
      url: [...urls],
      mode: 'in-page',
      engine: { indexedDB: new IDBFactory(), WebSocket: WebSocket as never },
    })
    this.#stopStatus = this.client.status.subscribe((status) => {
      const last = this.statuses.at(-1)
      const relayUrl = status.relayUrl ?? undefined
      if (last?.connection === status.connection && last.relayUrl === relayUrl) return
      this.statuses.push({ at: Date.now(), connection: status.connection, relayUrl })
    })
    if (sync) this.client.sync(SCENARIO_MAP)
  }

  /** The field only this client writes. */
  get field(): string {
    return `w_${this.name}`
  }

  /** One random write (see the module comment); resolves when it is durable locally. */
  async writeOnce(random: () => number, keys: number, scratchKeys: number): Promise<void> {
    const map = this.client.map<RecordValue>(SCENARIO_MAP)
    const n = ++this.#n
    const pick = random()
    this.writes++
    if (pick < 0.6) {
      const key = `k${Math.floor(random() * keys)}`
      this.written.set(key, n)
      const handle = map.update(key, { [this.field]: n })
      this.#track(handle.persisted, () => {
        if ((this.acked.get(key) ?? 0) < n) this.acked.set(key, n)
      })
      await handle
    } else if (pick < 0.85) {
      const handle = map.update(`k${Math.floor(random() * keys)}`, { last: `${this.name}:${n}` })
      this.#track(handle.persisted, () => {})
      await handle
    } else {
      const key = `s${Math.floor(random() * scratchKeys)}`
      const handle = random() < 0.6 ? map.set(key, { v: n, by: this.name }) : map.delete(key)
      this.#track(handle.persisted, () => {})
      await handle
    }
  }

  #track(persisted: Promise<void>, onAck: () => void): void {
    const tracked = persisted.then(
      () => {
        this.ackedWrites++
        onAck()
      },
      () => {
        this.refused++
      },
    )
    this.#persisted.add(tracked)
    void tracked.finally(() => this.#persisted.delete(tracked))
  }

  /** Writes whose `persisted` has not settled yet. */
  get unacknowledged(): number {
    return this.#persisted.size
  }

  /** Resolves when every write so far is acknowledged (or refused), or after `timeoutMs`. */
  async settle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (this.#persisted.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.all([...this.#persisted]), new Promise((resolve) => setTimeout(resolve, 250))])
    }
    return this.#persisted.size === 0
  }

  /** Goes offline (writes keep working) or back online. */
  async setOffline(offline: boolean): Promise<void> {
    if (offline === this.offline) return
    this.offline = offline
    if (offline) this.offlineIntervals.push([Date.now(), Number.POSITIVE_INFINITY])
    await this.client.setOffline(offline)
    const open = this.offlineIntervals.at(-1)
    if (!offline && open !== undefined) open[1] = Date.now()
  }

  /** Every live record this client holds locally. */
  async contents(): Promise<Map<string, RecordValue>> {
    const rows = await this.client.map<RecordValue>(SCENARIO_MAP).query().get()
    return new Map(rows.map((row) => [row.key, row.value]))
  }

  async close(): Promise<void> {
    this.#stopStatus()
    await this.client.close()
  }
}

/** The keys where two maps of records differ, each as a short line. */
export function recordDifferences(expected: ReadonlyMap<string, RecordValue>, actual: ReadonlyMap<string, RecordValue>): string[] {
  const out: string[] = []
  for (const key of new Set([...expected.keys(), ...actual.keys()])) {
    const a = JSON.stringify(sortFields(expected.get(key)))
    const b = JSON.stringify(sortFields(actual.get(key)))
    if (a !== b) out.push(`${key}: store ${a ?? 'absent'} ≠ client ${b ?? 'absent'}`)
  }
  return out
}

function sortFields(record: RecordValue | undefined): RecordValue | undefined {
  if (record === undefined) return undefined
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) as RecordValue
}

/**
 * Live fan-out shares one delivery among the subscribers of a view (`sync/fan-out.ts`), so
 * the relay frames and encodes it once for all of them. What each subscriber receives must
 * be exactly what the per-subscriber fan-out gave: the writer's subscriptions without their
 * own up-to-date write (and with the stored record when their write lost), a subscriber
 * that joined while a batch was being delivered with only what came after, every view with
 * its own filter and projection. Randomized (seeded, printed) against a reference that
 * delivers per subscriber, as the relay did before; then end to end over the relay's
 * sockets, where each subscriber's frame is byte for byte its own encoding, in v1 and v2,
 * for subscription ids of every msgpack width.
 */
import { decode, encodeMessage, encodeStamp, type ChangesMessage, type CrdtState, type ReplicaId, type Shape } from '@outpost/core'
import type { Logger } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { FanOut, REMOTE_ORIGIN, SharedDelivery, type Applied, type OutRecord, type Subscriber } from '../src/sync/fan-out'
import type { MapCatalog, MapState } from '../src/sync/map-catalog'
import { ShapeView } from '../src/sync/shape-view'
import type { RelayStore } from '../src/sync/sync-service'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'
import { prng, testSeed } from './helpers/seed'

/** What one subscriber was given, in order. */
interface Got {
  changes: OutRecord[]
  moveOut: string[]
  seq: number
  shared: SharedDelivery | undefined
}

/** The fan-out as it was before deliveries were shared: every subscriber's entry built on its own. */
async function referenceDeliver(applied: readonly Applied[], getRecords: (keys: string[]) => Promise<({ state: CrdtState } | undefined)[]>): Promise<Map<Subscriber, Got>> {
  const out = new Map<Subscriber, Got>()
  const entryOf = (subscriber: Subscriber): Got => {
    let entry = out.get(subscriber)
    if (entry === undefined) {
      entry = { changes: [], moveOut: [], seq: 0, shared: undefined }
      out.set(subscriber, entry)
    }
    return entry
  }
  for (const change of applied) {
    for (const view of change.map.views.values()) {
      if (view.subscribers.size === 0) continue
      const effect =
        change.unchanged === true
          ? { send: [], moveOut: [] }
          : change.previous === undefined && change.origin === REMOTE_ORIGIN
            ? view.updateUnknown(change.key, change.state, change.before)
            : view.update(change.key, change.previous, change.state)
      if (!change.writerUpToDate && !effect.send.includes(change.key) && !effect.moveOut.includes(change.key)) {
        for (const subscriber of view.subscribers as Set<Subscriber>) {
          if (subscriber.owner !== change.origin) continue
          const entry = entryOf(subscriber)
          if (view.isMember(change.key, change.state)) entry.changes.push({ key: change.key, state: view.project(change.state) })
          else if (!view.plain) entry.moveOut.push(change.key)
        }
      }
      if (effect.send.length === 0 && effect.moveOut.length === 0) continue
      const others = effect.send.filter((k) => k !== change.key)
      const read = others.length === 0 ? [] : await getRecords(others)
      const states = new Map<string, CrdtState>(others.map((k, i) => [k, read[i]?.state] as const).filter((e): e is [string, CrdtState] => e[1] !== undefined))
      states.set(change.key, change.state)
      for (const [key, state] of states) view.track(key, state)
      for (const subscriber of view.subscribers as Set<Subscriber>) {
        const entry = entryOf(subscriber)
        entry.seq = Math.max(entry.seq, change.seq)
        const own = subscriber.owner === change.origin
        for (const key of effect.send) {
          if (own && key === change.key && change.writerUpToDate) continue
          const state = states.get(key)
          if (state !== undefined) entry.changes.push({ key, state: view.project(state) })
        }
        entry.moveOut.push(...effect.moveOut)
      }
    }
  }
  return out
}

/** Fan-out logs what it cannot deliver: here that fails the test. */
const failures: unknown[] = []
const logger = { error: (fields: { err?: unknown }) => failures.push(fields.err) } as unknown as Logger

/** One side of the comparison: its own views (each side's views hold their own state), subscribers and records. */
function world(shapes: readonly Shape[], sessions: readonly object[], perView: number) {
  const records = new Map<string, CrdtState>()
  const got = new Map<string, Got>()
  const names = new Map<Subscriber, string>()
  const views = shapes.map((shape, i) => new ShapeView(`view-${i}`, shape, undefined, () => 'lww'))
  const map = { map: 'todos', views: new Map(views.map((view) => [view.id, view])) } as unknown as MapState
  const subscriber = (name: string, view: ShapeView, owner: object): Subscriber => {
    const made: Subscriber = {
      sub: 0,
      view,
      map: 'todos',
      owner,
      deliver(changes, moveOut, seq, shared) {
        expect(got.has(name), `${name} got two deliveries for one batch`).toBe(false)
        got.set(name, { changes: [...changes], moveOut: [...moveOut], seq, shared })
      },
    }
    names.set(made, name)
    return made
  }
  views.forEach((view, v) => {
    for (let s = 0; s < perView; s++) view.subscribers.add(subscriber(`v${v}-s${s}`, view, sessions[s % sessions.length] as object))
  })
  /** Joins a subscriber while a batch is being delivered (on the first store read), as a `subscribe` can. */
  let joining: { name: string; view: number; owner: object } | undefined
  const getRecords = async (keys: string[]): Promise<({ state: CrdtState; seq: number } | undefined)[]> => {
    await Promise.resolve()
    if (joining !== undefined) {
      const view = views[joining.view] as ShapeView
      view.subscribers.add(subscriber(joining.name, view, joining.owner))
      joining = undefined
    }
    return keys.map((key) => {
      const state = records.get(key)
      return state === undefined ? undefined : { state, seq: 0 }
    })
  }
  return {
    records,
    got,
    names,
    map,
    views,
    getRecords,
    join(name: string, view: number, owner: object) {
      joining = { name, view, owner }
    },
  }
}

describe('shared fan-out deliveries', () => {
  it('give every subscriber what a per-subscriber fan-out gives (randomized)', async () => {
    const seed = testSeed('shared-fan-out')
    const random = prng(seed)
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T
    const sessions = [{}, {}, {}]
    const origins = [...sessions, REMOTE_ORIGIN, {}]
    const shapes: Shape[] = [
      { map: 'todos' },
      { map: 'todos', where: { eq: ['owner', 'a'] }, fields: ['owner', 'n'] },
      { map: 'todos', where: { gte: ['n', 5] }, orderBy: [['n', 'asc']], limit: 3 },
    ]
    const ours = world(shapes, sessions, 5)
    const theirs = world(shapes, sessions, 5)
    const fanOut = new FanOut({ getRecords: (_map: string, keys: string[]) => ours.getRecords(keys) } as unknown as RelayStore, {} as MapCatalog, logger)
    let wall = 1_700_000_000_000
    let seq = 0
    let shared = 0
    for (let round = 0; round < 150; round++) {
      const batch: { key: string; previous: CrdtState | undefined; state: CrdtState; origin: object; writerUpToDate: boolean; unchanged?: true; seq: number }[] = []
      for (let i = 0, n = 1 + Math.floor(random() * 5); i < n; i++) {
        const key = `k${Math.floor(random() * 12)}`
        // As `set` writes: the tombstone one tick before the fields (a delete: the tombstone alone).
        const deleted = encodeStamp({ wall: ++wall, counter: 0, replica: 'r' as ReplicaId })
        const stamp = encodeStamp({ wall, counter: 1, replica: 'r' as ReplicaId })
        const state: CrdtState = random() < 0.15 ? { fields: [], deleted } : { fields: [['owner', pick(['a', 'b']), stamp], ['n', Math.floor(random() * 10), stamp], ['title', `t${round}`, stamp]], deleted }
        batch.push({ key, previous: ours.records.get(key), state, origin: pick(origins), writerUpToDate: random() < 0.7, ...(random() < 0.05 ? { unchanged: true as const } : {}), seq: ++seq })
        ours.records.set(key, state)
        theirs.records.set(key, state)
      }
      if (random() < 0.2) {
        const view = Math.floor(random() * shapes.length)
        const owner = pick(sessions)
        ours.join(`joined-${round}`, view, owner)
        theirs.join(`joined-${round}`, view, owner)
      }
      const applied = (side: typeof ours): Applied[] => batch.map((c) => ({ ...c, map: side.map, kind: 'lww', previous: c.origin === REMOTE_ORIGIN ? undefined : c.previous }))
      ours.got.clear()
      fanOut.enqueue(applied(ours))
      await fanOut.delivered()
      expect(failures.map((f) => (f instanceof Error ? f.stack : f))).toEqual([])
      const expected = await referenceDeliver(applied(theirs), theirs.getRecords)
      // Compared by subscriber name: each side has its own subscriber objects.
      const reference = new Map([...expected].map(([s, entry]) => [theirs.names.get(s) as string, { changes: entry.changes, moveOut: entry.moveOut, seq: entry.seq }]))
      const actual = new Map([...ours.got].map(([name, entry]) => [name, { changes: entry.changes, moveOut: entry.moveOut, seq: entry.seq }]))
      expect(actual, `seed ${seed}, round ${round}`).toEqual(reference)
      // Recipients of one shared delivery received the same thing.
      const groups = new Map<SharedDelivery, Got[]>()
      for (const entry of ours.got.values()) if (entry.shared !== undefined) groups.set(entry.shared, [...(groups.get(entry.shared) ?? []), entry])
      for (const members of groups.values()) {
        expect(members.length).toBeGreaterThan(1)
        for (const member of members) expect({ ...member, shared: undefined }).toEqual({ ...(members[0] as Got), shared: undefined })
        shared++
      }
    }
    // Not vacuous: most batches reach some view's subscribers through one shared delivery.
    expect(shared).toBeGreaterThan(100)
  })

  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })

  it('sends each subscriber, over the relay, the bytes of its own encoding (v1 and v2, ids of every width)', async () => {
    const { relay, stop } = await startRelay()
    cleanups.push(stop)
    const ids = [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]
    const readers: { client: TestClient; version: number; frames: Uint8Array[] }[] = []
    for (const versions of [[1], [1, 2]]) {
      const { client, welcome } = await TestClient.connect(relay.url, { versions })
      cleanups.push(() => client.close())
      const frames: Uint8Array[] = []
      client.ws.on('message', (data: Buffer) => {
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length).slice()
        if ((decode(bytes) as { type?: unknown }).type === 'changes') frames.push(bytes)
      })
      // Several subscriptions of one session on one view, and one on another view.
      for (const sub of ids) client.send({ type: 'subscribe', sub, shape: { map: 'todos' } })
      client.send({ type: 'subscribe', sub: 9, shape: { map: 'todos', where: { eq: ['done', true] } } })
      for (const sub of [...ids, 9]) await client.next((m) => m.type === 'synced' && m.sub === sub)
      readers.push({ client, version: welcome.version, frames })
    }
    const { client: writer } = await TestClient.connect(relay.url, {})
    cleanups.push(() => writer.close())
    await writer.ops([update(writer.clock, 'todos', 'a', { title: 'A', done: false }), update(writer.clock, 'todos', 'b', { title: 'B', done: true })])
    for (const { client, version, frames } of readers) {
      for (const sub of [...ids, 9]) await client.waitAny((m) => m.type === 'changes' && m.sub === sub && m.changes.some((c) => c.key === 'b'))
      // Both listeners see every message in order: the decoded `changes` messages pair with the raw frames.
      const messages = client.all<ChangesMessage>((m) => m.type === 'changes')
      expect(messages.length).toBe(frames.length)
      const hex = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? []).toString('hex')
      messages.forEach((message, i) => expect(hex(frames[i]), `sub ${message.sub}, v${version}`).toBe(hex(encodeMessage(message, version))))
      const live = messages.filter((m) => m.changes.some((c) => c.key === 'b'))
      expect(live.map((m) => m.sub).sort((x, y) => x - y)).toEqual([...ids, 9].sort((x, y) => x - y))
      for (const message of live) expect(message.changes.map((c) => c.key)).toEqual(message.sub === 9 ? ['b'] : ['a', 'b'])
    }
  })
})

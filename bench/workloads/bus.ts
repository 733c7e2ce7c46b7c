/**
 * The bus between relays (`--only bus`): two bus instances in this process, as two relays
 * would hold them, for each bus — memory (the floor: no transport), Postgres LISTEN/NOTIFY
 * and Redis Streams on the local servers — alternating within every round.
 * - publish → delivery p50/p99: 64-byte topic messages, one at a time (the next is published
 *   once the previous arrived), timed with one clock (`performance.now`), so no skew;
 * - hints/s: hint batches (one `{ map, seq }` each, as one committed transaction publishes)
 *   published as fast as the publisher's event loop allows, until the other instance has
 *   all of them. Postgres packs what was published while its previous NOTIFY committed into
 *   the next one; Redis does one XADD per batch.
 * A bus whose server is not reachable shows why instead of figures.
 */
import { randomBytes } from 'node:crypto'
import { MemoryBusHub, type Bus } from '@outpost/core'
import { PostgresBus, RedisBus } from '@outpost/server-lite'
import { Redis } from 'ioredis'
import pg from 'pg'
import type { BenchContext } from '../lib/context'
import type { ResultRow } from '../lib/results'
import { alternate, quantile, summarize, withTimeout } from '../lib/stats'

const POSTGRES_URL = process.env['OUTPOST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env['OUTPOST_REDIS_URL'] ?? 'redis://127.0.0.1:6379'

type BusKind = 'memory' | 'postgres' | 'redis'
const KINDS: readonly BusKind[] = ['memory', 'postgres', 'redis']

interface Pair {
  readonly a: Bus
  readonly b: Bus
  close(): Promise<void>
}

/** Two instances of one bus on a transport of their own (a fresh schema or key prefix). */
async function openPair(kind: BusKind): Promise<Pair> {
  const tag = `bench_bus_${randomBytes(4).toString('hex')}`
  if (kind === 'memory') {
    const hub = new MemoryBusHub()
    const a = hub.open()
    const b = hub.open()
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) }
  }
  if (kind === 'postgres') {
    const a = await PostgresBus.open({ connectionString: POSTGRES_URL, schema: tag })
    const b = await PostgresBus.open({ connectionString: POSTGRES_URL, schema: tag })
    return {
      a,
      b,
      close: async () => {
        await Promise.all([a.close(), b.close()])
        const client = new pg.Client({ connectionString: POSTGRES_URL })
        await client.connect()
        await client.query(`drop schema if exists "${tag}" cascade`)
        await client.end()
      },
    }
  }
  const a = await RedisBus.open({ url: REDIS_URL, keyPrefix: `${tag}:` })
  const b = await RedisBus.open({ url: REDIS_URL, keyPrefix: `${tag}:` })
  return {
    a,
    b,
    close: async () => {
      await Promise.all([a.close(), b.close()])
      const client = new Redis(REDIS_URL)
      await client.del(`${tag}:bus`)
      client.disconnect()
    },
  }
}

/** Publish → delivery times (ms) of `count` topic messages sent one at a time. */
async function latencies(pair: Pair, count: number): Promise<number[]> {
  const samples: number[] = []
  let arrived: (() => void) | undefined
  pair.b.subscribeTopic('bench', () => arrived?.())
  const payload = new Uint8Array(64)
  for (let seq = 1; seq <= count; seq++) {
    const delivered = new Promise<void>((resolve) => {
      arrived = resolve
    })
    const started = performance.now()
    await pair.a.publishTopic({ topic: 'bench', publisher: 'bench', seq, payload })
    await delivered
    samples.push(performance.now() - started)
  }
  return samples
}

/** Hint batches per second from `a` to `b`. */
async function hintRate(pair: Pair, count: number): Promise<number> {
  let received = 0
  let done: (() => void) | undefined
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  pair.b.onHints((hints) => {
    received += hints.length
    if (received >= count) done?.()
  })
  const started = performance.now()
  const pending: Promise<void>[] = []
  for (let i = 0; i < count; i++) {
    pending.push(pair.a.publishHints([{ map: `map-${i % 50}`, seq: i + 1 }]))
    // Yield now and then, as a relay does between commits, so the transport can work meanwhile.
    if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve))
  }
  await Promise.all(pending)
  await all
  return count / ((performance.now() - started) / 1000)
}

/** Runs the bus workload. */
export async function busLoad(context: BenchContext): Promise<ResultRow[]> {
  const messages = context.quick ? 200 : 1_000
  const hints = context.quick ? 5_000 : 50_000
  const p99 = new Map<BusKind, number[]>(KINDS.map((k) => [k, []]))
  const rates = new Map<BusKind, number[]>(KINDS.map((k) => [k, []]))
  const p50 = await alternate(KINDS, context.repeats, async (kind, round) => {
    const pair = await withTimeout(openPair(kind), 15_000, `opening the ${kind} bus`)
    try {
      const samples = await withTimeout(latencies(pair, messages), 120_000, `${kind} latency`)
      const rate = await withTimeout(hintRate(pair, hints), 120_000, `${kind} hint rate`)
      if (round >= context.repeats.warmup) {
        p99.get(kind)?.push(quantile(samples, 0.99))
        rates.get(kind)?.push(rate)
      }
      context.log(`bus ${kind} round ${round}: p50 ${quantile(samples, 0.5).toFixed(2)} ms, p99 ${quantile(samples, 0.99).toFixed(2)} ms, ${Math.round(rate)} hints/s`)
      return quantile(samples, 0.5)
    } finally {
      await pair.close()
    }
  })
  const workload = 'bus between two relays (one process, local servers)'
  const rows: ResultRow[] = []
  for (const kind of KINDS) {
    const entry = p50.get(kind)
    const cell = (values: number[] | undefined) => (entry?.error !== undefined ? { unavailable: entry.error } : summarize(values ?? []))
    rows.push(
      { workload, metric: `${kind}: publish → delivery p50 (${messages} × 64 B, one at a time)`, unit: 'ms', lowerIsBetter: true, cells: { outpost: cell(entry?.samples) } },
      { workload, metric: `${kind}: publish → delivery p99`, unit: 'ms', lowerIsBetter: true, cells: { outpost: cell(p99.get(kind)) } },
      { workload, metric: `${kind}: hint batches delivered (${hints.toLocaleString('en')} published)`, unit: 'hints/s', lowerIsBetter: false, cells: { outpost: cell(rates.get(kind)) } },
    )
  }
  return rows
}

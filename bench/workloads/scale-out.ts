/**
 * Scale-out (`--only scale-out`): relays as their own processes (the CLI from source), all
 * on 127.0.0.1 with Node `ws` clients speaking the protocol (`lib/outpost-wire.ts`):
 * 1 relay on LMDB (the embedded default, the reference) beside 1, 2 and 3 relays sharing one
 * Postgres schema with the Postgres bus, every configuration up at once and measured in
 * turn within every round.
 * - ingest: changes/s acknowledged (an ack follows the durable commit) from W writers spread
 *   over the relays, frames of 100 changes, 4 in flight each, all into one map (whose
 *   writers a row lock serializes, across relays too) and then each into a map of its own;
 *   with the CPU the relay processes and the Postgres backends serving them spent;
 * - fan-out: one write through relay 0 → S subscribers spread over the relays, p50/p99 over
 *   subscribers and writes;
 * - write → one subscriber, one write at a time: on another relay than the writer's when
 *   there are several (the bus hint, then a read of the store's log), on the same otherwise.
 * A machine with 2 cores cannot give more relays more CPU: the figures show what sharing a
 * store costs and whether it keeps working, not how far it scales on real hardware.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { Change } from '@outpost/core'
import type { BenchContext } from '../lib/context'
import { makeRecord } from '../lib/data'
import { WireClient } from '../lib/outpost-wire'
import { CpuMeter, migrateSchema, postgresBackendsOf, startRelayProcess, stopRelayProcess, type RelayProcess } from '../lib/relay-processes'
import type { ResultRow } from '../lib/results'
import { alternate, quantile, summarize, withTimeout, type Summary } from '../lib/stats'
import { BENCH_LIMITS } from '../servers/outpost-server'

const POSTGRES_URL = process.env['OUTPOST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'
const BATCH = 100
const IN_FLIGHT = 4

/** A configuration: its relays, and the Postgres schema they share (none for LMDB). */
interface Setup {
  readonly id: SetupId
  readonly label: string
  readonly relays: RelayProcess[]
  readonly schema: string | undefined
}

type SetupId = 'lmdb-1' | 'pg-1' | 'pg-2' | 'pg-3'
const SETUPS: readonly { readonly id: SetupId; readonly label: string; readonly relays: number; readonly postgres: boolean }[] = [
  { id: 'lmdb-1', label: '1 relay, LMDB', relays: 1, postgres: false },
  { id: 'pg-1', label: '1 relay, Postgres', relays: 1, postgres: true },
  { id: 'pg-2', label: '2 relays, Postgres', relays: 2, postgres: true },
  { id: 'pg-3', label: '3 relays, Postgres', relays: 3, postgres: true },
]

/** One ingest run. */
interface IngestRun {
  readonly changes: number
  readonly seconds: number
  readonly rate: number
  /** CPU ms of each relay process. */
  readonly perRelay: readonly number[]
  readonly relayMs: number
  readonly pgMs: number
  /** CPU ms of this process (the clients). */
  readonly generatorMs: number
}

/** The figures of one configuration, one entry per recorded run. */
interface Figures {
  ingest: number[]
  ingestOwn: number[]
  relayCpuPer1k: number[]
  pgCpuPer1k: number[]
  relayCpuShare: number[]
  perProcessShare: number[]
  generatorShare: number[]
  pgShare: number[]
  fan50: number[]
  fan99: number[]
  one50: number[]
  one99: number[]
}

async function postgresMissing(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000 })
  try {
    await client.connect()
    await client.query('select 1')
    return undefined
  } catch (error) {
    return `PostgreSQL at ${POSTGRES_URL} is not reachable (${error instanceof Error ? error.message : String(error)})`
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** `count` connections, 25 at a time (a burst of handshakes measures the accept queue, not the relay). */
async function connectMany<T>(count: number, connect: (k: number) => Promise<T>): Promise<T[]> {
  const out: T[] = []
  for (let k = 0; k < count; k += 25) out.push(...(await Promise.all(Array.from({ length: Math.min(25, count - k) }, (_, j) => connect(k + j)))))
  return out
}

/** Sends `frames` from one client, IN_FLIGHT outstanding; resolves when all are acked. */
async function pump(client: WireClient, frames: readonly Change[][]): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < frames.length) await client.ops(frames[next++] as Change[])
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
}

/** Resolves with the time `client` first sees a change of `key`. */
function arrival(client: WireClient, key: string): Promise<number> {
  return new Promise((resolve) => {
    const off = client.onMessage((m) => {
      if (m.type === 'changes' && m.changes.some((c) => c.key === key)) {
        off()
        resolve(performance.now())
      }
    })
  })
}

/** Runs the scale-out workload. */
export async function scaleOut(context: BenchContext): Promise<ResultRow[]> {
  const quick = context.quick
  const total = quick ? 10_000 : 50_000
  const writers = quick ? 6 : 24
  const subscribers = quick ? 30 : 150
  const fanRounds = quick ? 10 : 20
  const singles = quick ? 30 : 100
  const workload = 'scale-out: relay processes over one store'
  const missing = await postgresMissing()
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-scale-'))
  const config = join(dir, 'relay.json')
  await writeFile(config, JSON.stringify({ limits: BENCH_LIMITS, logLevel: 'error' }))
  const setups: Setup[] = []
  const tag = randomBytes(4).toString('hex')
  try {
    for (const spec of SETUPS) {
      if (spec.postgres && missing !== undefined) continue
      const schema = spec.postgres ? `bench_scale_${spec.id.replace('-', '')}_${tag}` : undefined
      if (schema !== undefined) migrateSchema(context.root, POSTGRES_URL, schema)
      const relays: RelayProcess[] = []
      for (let i = 0; i < spec.relays; i++) {
        const store = schema === undefined ? ['--data-dir', join(dir, spec.id)] : ['--store', POSTGRES_URL, '--store-schema', schema, '--bus', 'postgres', '--replica-id', `relay-${i}`]
        relays.push(await startRelayProcess(context.root, [...store, '--config', config]))
      }
      setups.push({ id: spec.id, label: spec.label, relays, schema })
      context.log(`  scale-out: ${spec.label} up (pids ${relays.map((r) => r.pid).join(', ')})`)
    }
    const figures = new Map<SetupId, Figures>(setups.map((s) => [s.id, { ingest: [], ingestOwn: [], relayCpuPer1k: [], pgCpuPer1k: [], relayCpuShare: [], perProcessShare: [], generatorShare: [], pgShare: [], fan50: [], fan99: [], one50: [], one99: [] }]))
    let runId = 0

    /** W writers round-robin over the setup's relays send `total` changes to `mapOf(writer)`; CPU is metered over the send. */
    const ingest = async (setup: Setup, run: number, mapOf: (writer: number) => string): Promise<IngestRun> => {
      const at = (k: number): RelayProcess => setup.relays[k % setup.relays.length] as RelayProcess
      const pids = setup.relays.map((r) => r.pid)
      const perWriter = Math.floor(total / writers / BATCH) * BATCH
      const conns = await connectMany(writers, (k) => WireClient.connect(at(k).url, `ingest-${run}-${mapOf(k)}-${k}`))
      // Changes are built before the clock starts: the figure is the relays', not the client's.
      const frames = conns.map((c, k) => Array.from({ length: perWriter / BATCH }, (_, f) => Array.from({ length: BATCH }, (_, j) => c.change(mapOf(k), makeRecord(k * perWriter + f * BATCH + j)))))
      const backendsBefore = setup.schema === undefined ? [] : await postgresBackendsOf(POSTGRES_URL, pids)
      const relayCpu = new CpuMeter()
      const pgCpu = new CpuMeter()
      relayCpu.start(pids)
      pgCpu.start(backendsBefore)
      const generator = process.cpuUsage()
      const t0 = performance.now()
      await withTimeout(Promise.all(conns.map((c, k) => pump(c, frames[k] as Change[][]))), 300_000, `${setup.label} ingest`)
      const seconds = (performance.now() - t0) / 1000
      const generatorUsage = process.cpuUsage(generator)
      const perRelay = relayCpu.stop(pids)
      const backendsAfter = setup.schema === undefined ? [] : await postgresBackendsOf(POSTGRES_URL, pids)
      const pgMs = pgCpu.stop([...new Set([...backendsBefore, ...backendsAfter])]).reduce((a, b) => a + b, 0)
      await Promise.all(conns.map((c) => c.close()))
      const changes = perWriter * writers
      return { changes, seconds, rate: changes / seconds, perRelay, relayMs: perRelay.reduce((a, b) => a + b, 0), pgMs, generatorMs: (generatorUsage.user + generatorUsage.system) / 1000 }
    }

    const measure = async (setup: Setup, round: number): Promise<number> => {
      const f = figures.get(setup.id) as Figures
      const recorded = round >= context.repeats.warmup
      const at = (k: number): RelayProcess => setup.relays[k % setup.relays.length] as RelayProcess
      const run = runId++

      // ── ingest: into one map (one row lock per map serializes its writers), then a map per writer ──
      const oneMap = await ingest(setup, run, () => `ingest${run}`)
      const ownMaps = await ingest(setup, run, (k) => `ingest${run}-w${k}`)
      if (recorded) {
        f.ingest.push(oneMap.rate)
        f.ingestOwn.push(ownMaps.rate)
        f.relayCpuPer1k.push(oneMap.relayMs / (oneMap.changes / 1000))
        if (setup.schema !== undefined) f.pgCpuPer1k.push(oneMap.pgMs / (oneMap.changes / 1000))
        // CPU ms over wall seconds, as a percentage of one core.
        const share = (ms: number): number => ms / 10 / oneMap.seconds
        f.relayCpuShare.push(share(oneMap.relayMs))
        f.perProcessShare.push(share(Math.max(...oneMap.perRelay)))
        f.generatorShare.push(share(oneMap.generatorMs))
        if (setup.schema !== undefined) f.pgShare.push(share(oneMap.pgMs))
      }

      // ── fan-out: writer on relay 0, subscribers round-robin over the relays ──
      const fanMap = `fan${run}`
      const subs = await connectMany(subscribers, async (k) => {
        const c = await WireClient.connect(at(k).url, `sub-${run}-${k}`)
        await c.subscribe(1, { map: fanMap })
        return c
      })
      const writer = await WireClient.connect(at(0).url, `writer-${run}`)
      const fan: number[] = []
      for (let r = 0; r < fanRounds; r++) {
        const record = makeRecord(r, run)
        const arrivals = subs.map((s) => arrival(s, record.id))
        const change = writer.change(fanMap, record)
        const start = performance.now()
        void writer.ops([change])
        for (const t of await withTimeout(Promise.all(arrivals), 30_000, `${setup.label} fan-out`)) fan.push(t - start)
      }
      await Promise.all(subs.map((s) => s.close()))

      // ── one subscriber, on another relay than the writer's where there is one ──
      const singleMap = `one${run}`
      const reader = await WireClient.connect(at(1).url, `reader-${run}`)
      await reader.subscribe(1, { map: singleMap })
      const one: number[] = []
      for (let r = 0; r < singles; r++) {
        const record = makeRecord(r, run)
        const seen = arrival(reader, record.id)
        const start = performance.now()
        void writer.ops([writer.change(singleMap, record)])
        one.push((await withTimeout(seen, 30_000, `${setup.label} write → subscriber`)) - start)
      }
      await reader.close()
      await writer.close()
      if (recorded) {
        f.fan50.push(quantile(fan, 0.5))
        f.fan99.push(quantile(fan, 0.99))
        f.one50.push(quantile(one, 0.5))
        f.one99.push(quantile(one, 0.99))
      }
      context.log(
        `  scale-out ${setup.label} round ${round}: ingest ${Math.round(oneMap.rate)} changes/s into one map (relay CPU ${oneMap.perRelay.map((ms) => Math.round(ms)).join(' + ')} ms, Postgres backends ${Math.round(oneMap.pgMs)} ms), ${Math.round(ownMaps.rate)} changes/s into a map per writer, fan-out p50 ${quantile(fan, 0.5).toFixed(1)} / p99 ${quantile(fan, 0.99).toFixed(1)} ms, one subscriber p50 ${quantile(one, 0.5).toFixed(1)} ms`,
      )
      return oneMap.rate
    }

    const outcome = await alternate(
      setups.map((s) => s.id),
      context.repeats,
      (id, round) => measure(setups.find((s) => s.id === id) as Setup, round),
    )
    const rows: ResultRow[] = []
    const table = scaleTable(setups, figures, outcome, { total, writers, subscribers, fanRounds, singles })
    context.addSection?.(
      [
        `### Scale-out: relay processes over one Postgres vs one relay on LMDB`,
        '',
        `Every configuration up at once, measured in turn within every round; cells: median (min–max) over runs; ratios are of medians. The machine's cores are shared by every relay, Postgres and the load generator, so more relays cannot add CPU.`,
        '',
        table,
      ].join('\n'),
    )
    for (const setup of setups) {
      const f = figures.get(setup.id) as Figures
      const error = outcome.get(setup.id)?.error
      const cell = (values: number[]) => (error !== undefined ? { unavailable: error } : summarize(values))
      const w = `${workload}: ${setup.label}`
      rows.push(
        { workload: w, metric: `ingest into one map, ${writers} writers over the relays (frames of ${BATCH}, ${IN_FLIGHT} in flight)`, unit: 'changes/s', lowerIsBetter: false, cells: { outpost: cell(f.ingest) } },
        { workload: w, metric: `ingest, each of ${writers} writers into its own map`, unit: 'changes/s', lowerIsBetter: false, cells: { outpost: cell(f.ingestOwn) } },
        { workload: w, metric: `fan-out p50, write → ${subscribers} subscribers over the relays`, unit: 'ms', lowerIsBetter: true, cells: { outpost: cell(f.fan50) } },
        { workload: w, metric: `fan-out p99`, unit: 'ms', lowerIsBetter: true, cells: { outpost: cell(f.fan99) } },
        { workload: w, metric: `write → 1 subscriber p50 (${setup.relays.length > 1 ? 'another relay' : 'same relay'})`, unit: 'ms', lowerIsBetter: true, cells: { outpost: cell(f.one50) } },
      )
    }
    if (missing !== undefined) {
      rows.push({ workload, metric: 'Postgres configurations', unit: '-', lowerIsBetter: true, cells: { outpost: { unavailable: missing } } })
    }
    return rows
  } finally {
    await Promise.all(setups.flatMap((s) => s.relays.map(stopRelayProcess)))
    const schemas = setups.flatMap((s) => (s.schema === undefined ? [] : [s.schema]))
    if (schemas.length > 0) {
      const client = new pg.Client({ connectionString: POSTGRES_URL })
      await client.connect()
      for (const schema of schemas) await client.query(`drop schema if exists "${schema}" cascade`)
      await client.end()
    }
    await rm(dir, { recursive: true, force: true })
  }
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return 'n/a'
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  if (Math.abs(value) >= 100) return value.toFixed(0)
  if (Math.abs(value) >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

/** The scale-out table: one column per configuration, with each figure's ratio to the LMDB relay's. */
function scaleTable(
  setups: readonly Setup[],
  figures: ReadonlyMap<SetupId, Figures>,
  outcome: ReadonlyMap<SetupId, { samples: number[]; error?: string }>,
  sizes: { total: number; writers: number; subscribers: number; fanRounds: number; singles: number },
): string {
  const metrics: { name: string; unit: string; pick: (f: Figures) => number[] }[] = [
    { name: `ingest into one map, ${sizes.writers} writers, ${sizes.total.toLocaleString('en-US')} changes`, unit: 'changes/s ↑', pick: (f) => f.ingest },
    { name: `ingest, each writer into its own map (${sizes.writers} maps)`, unit: 'changes/s ↑', pick: (f) => f.ingestOwn },
    { name: 'one map: relay CPU per 1,000 changes ingested (all relay processes)', unit: 'ms ↓', pick: (f) => f.relayCpuPer1k },
    { name: 'one map: Postgres backend CPU per 1,000 changes (backends serving these relays)', unit: 'ms ↓', pick: (f) => f.pgCpuPer1k },
    { name: 'one map, CPU during ingest: all relay processes (100% = one core)', unit: '%', pick: (f) => f.relayCpuShare },
    { name: 'one map, CPU during ingest: the busiest relay process', unit: '%', pick: (f) => f.perProcessShare },
    { name: 'one map, CPU during ingest: Postgres backends serving the relays', unit: '%', pick: (f) => f.pgShare },
    { name: 'one map, CPU during ingest: the load generator (this process: clients, codec)', unit: '%', pick: (f) => f.generatorShare },
    { name: `fan-out p50, relay 0 → ${sizes.subscribers} subscribers round-robin over the relays (${sizes.fanRounds} writes)`, unit: 'ms ↓', pick: (f) => f.fan50 },
    { name: 'fan-out p99', unit: 'ms ↓', pick: (f) => f.fan99 },
    { name: `write → 1 subscriber p50 (${sizes.singles} writes one at a time; another relay when there are 2 or 3)`, unit: 'ms ↓', pick: (f) => f.one50 },
    { name: 'write → 1 subscriber p99', unit: 'ms ↓', pick: (f) => f.one99 },
  ]
  const head = ['metric', 'unit', ...setups.map((s) => s.label), ...setups.filter((s) => s.id !== 'lmdb-1').map((s) => `${s.label} ÷ LMDB`)]
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
  const reference = figures.get('lmdb-1')
  for (const metric of metrics) {
    const summaries = setups.map((s): Summary | string => {
      const error = outcome.get(s.id)?.error
      if (error !== undefined) return `not available: ${error.replace(/\|/g, '/')}`
      const values = metric.pick(figures.get(s.id) as Figures)
      return values.length === 0 ? '—' : summarize(values)
    })
    const ref = reference === undefined ? undefined : summarize(metric.pick(reference))
    const cells = summaries.map((s) => (typeof s === 'string' ? s : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`))
    const ratios = summaries.slice(1).map((s) => (typeof s === 'string' || ref === undefined || !(ref.median > 0) ? '—' : `${(s.median / ref.median).toFixed(2)}×`))
    lines.push(`| ${[metric.name, metric.unit, ...cells, ...(setups[0]?.id === 'lmdb-1' ? ratios : [])].join(' | ')} |`)
  }
  return lines.join('\n')
}

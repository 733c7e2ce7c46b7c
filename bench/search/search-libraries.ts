/**
 * Which full-text library the engine uses: MiniSearch, FlexSearch and Orama each index the
 * same N task records of the demo's shape (title + notes, seeded text, `lib/task-data.ts`)
 * in a fresh Node process (so heaps do not mix), and report:
 * - index time (ms) for N adds, one by one (the engine adds records as they arrive);
 * - retained heap (MiB): heap used after a forced GC with the index alive, minus before;
 * - serialized size (MiB) of the library's own export (what the engine would persist);
 * - query p50/p99 (ms) over 200 one-word prefix queries, top 20.
 * Libraries alternate within every round; each figure is the median over rounds.
 *
 *   node --expose-gc --import tsx bench/search/search-libraries.ts [--records 100000] [--runs 3]
 *
 * Timings are noisy on a shared machine: read them as orders of magnitude.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { makeTasks, queryWords, type TaskRecord } from '../lib/task-data'

const LIBRARIES = ['minisearch', 'flexsearch', 'orama'] as const
type Library = (typeof LIBRARIES)[number]

interface Figures {
  readonly indexMs: number
  readonly heapMiB: number
  readonly serializedMiB: number
  readonly queryP50Ms: number
  readonly queryP99Ms: number
}

const SEED = 14

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error('run with node --expose-gc')
  collect()
  collect()
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

/** One library, in this process: index, measure, query. */
async function measure(library: Library, records: number): Promise<Figures> {
  const tasks = makeTasks(records, SEED)
  const words = queryWords(tasks, 200, SEED + 1)
  gc()
  const heapBefore = process.memoryUsage().heapUsed
  let search: (word: string) => unknown
  let serialize: () => Promise<string>
  let keep: unknown
  const started = performance.now()
  if (library === 'minisearch') {
    const { default: MiniSearch } = await import('minisearch')
    const index = new MiniSearch<{ id: string } & TaskRecord>({ fields: ['title', 'notes'], idField: 'id' })
    for (const { key, value } of tasks) index.add({ id: key, ...value })
    search = (word) => index.search(word, { prefix: true }).slice(0, 20)
    serialize = async () => JSON.stringify(index)
    keep = index
  } else if (library === 'flexsearch') {
    const { Document } = await import('flexsearch')
    const index = new Document({ document: { id: 'id', index: ['title', 'notes'] }, tokenize: 'forward' })
    for (const { key, value } of tasks) index.add({ id: key, title: value.title, notes: value.notes })
    search = (word) => index.search(word, { limit: 20 })
    serialize = async () => {
      const parts: string[] = []
      await index.export((key: string, data: string) => {
        parts.push(key, data)
      })
      return parts.join('')
    }
    keep = index
  } else {
    const { create, insert, search: oramaSearch, save } = await import('@orama/orama')
    const db = create({ schema: { id: 'string', title: 'string', notes: 'string' } as const })
    for (const { key, value } of tasks) insert(db, { id: key, title: value.title, notes: value.notes })
    search = (word) => oramaSearch(db, { term: word, properties: ['title', 'notes'], limit: 20 })
    serialize = async () => JSON.stringify(save(db))
    keep = db
  }
  const indexMs = performance.now() - started
  // The records themselves stay alive in both measurements' heaps: only the index differs.
  gc()
  const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024
  const times: number[] = []
  for (const word of words) {
    const t0 = performance.now()
    await search(word.slice(0, Math.max(3, word.length - 2)))
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  const serializedMiB = (await serialize()).length / 1024 / 1024
  if (keep === undefined || tasks.length === 0) throw new Error('unreachable: keeps the index and records alive until measured')
  return { indexMs, heapMiB, serializedMiB, queryP50Ms: percentile(times, 50), queryP99Ms: percentile(times, 99) }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const option = (name: string, fallback: number): number => {
    const at = args.indexOf(name)
    return at < 0 ? fallback : Number(args[at + 1])
  }
  const records = option('--records', 100_000)
  const child = args.indexOf('--child')
  if (child >= 0) {
    process.stdout.write(JSON.stringify(await measure(args[child + 1] as Library, records)))
    return
  }
  const runs = option('--runs', 3)
  const results = new Map<Library, Figures[]>(LIBRARIES.map((l) => [l, []]))
  const self = fileURLToPath(import.meta.url)
  for (let run = 0; run < runs; run++) {
    for (const library of LIBRARIES) {
      const out = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', self, '--child', library, '--records', String(records)], { encoding: 'utf8' })
      if (out.status !== 0) throw new Error(`${library} failed: ${out.stderr}`)
      const figures = JSON.parse(out.stdout) as Figures
      results.get(library)?.push(figures)
      process.stderr.write(`run ${run + 1}/${runs} ${library}: ${JSON.stringify(figures)}\n`)
    }
  }
  console.log(`\n${records.toLocaleString('en')} task records (title + notes), median of ${runs} runs, Node ${process.version}\n`)
  console.log('| library | index time | retained heap | serialized | query p50 / p99 (prefix, top 20) |')
  console.log('|---|---|---|---|---|')
  for (const library of LIBRARIES) {
    const rows = results.get(library) as Figures[]
    const m = (pick: (f: Figures) => number): number => median(rows.map(pick))
    console.log(
      `| ${library} | ${(m((f) => f.indexMs) / 1000).toFixed(2)} s | ${m((f) => f.heapMiB).toFixed(0)} MiB | ${m((f) => f.serializedMiB).toFixed(1)} MiB | ${m((f) => f.queryP50Ms).toFixed(2)} / ${m((f) => f.queryP99Ms).toFixed(2)} ms |`,
    )
  }
}

await main()

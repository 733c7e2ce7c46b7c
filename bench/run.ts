/**
 * `npm run bench [-- --quick] [-- --only <workload>]`: builds the pages, starts every
 * system's server behind a byte-counting proxy, runs the workloads, prints a markdown
 * table and writes `bench/results/latest.json`. Timings never fail the run: the exit
 * code is non-zero only when the harness itself breaks.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildPages, chromiumVersion, serveStatic } from './lib/browser'
import type { BenchContext, ProxiedServer, Workload } from './lib/context'
import { startCountingProxy } from './lib/counting-proxy'
import { markdownTable, type ResultRow } from './lib/results'
import { startServer } from './servers'
import { SYSTEMS, type SystemName } from './servers/system-server'
import { browserSync } from './workloads/browser-sync'
import { busLoad } from './workloads/bus'
import { crossDevice } from './workloads/cross-device'
import { liveWrite } from './workloads/live-write'
import { million } from './workloads/million'
import { millionPeers } from './workloads/million-peers'
import { relayLoad } from './workloads/relay'
import { scaleOut } from './workloads/scale-out'
import { searchLoad } from './workloads/search'

const WORKLOADS: Record<string, { needsBrowser: boolean; run: Workload }> = {
  sync: { needsBrowser: true, run: browserSync },
  live: { needsBrowser: true, run: liveWrite },
  'cross-device': { needsBrowser: true, run: crossDevice },
  relay: { needsBrowser: false, run: relayLoad },
  million: { needsBrowser: true, run: million },
  'million-peers': { needsBrowser: true, run: millionPeers },
  bus: { needsBrowser: false, run: busLoad },
  'scale-out': { needsBrowser: false, run: scaleOut },
  search: { needsBrowser: false, run: searchLoad },
}

function parseArgs(argv: readonly string[]): { quick: boolean; only: string[]; runs: number } {
  const only: string[] = []
  let quick = false
  // Fewer runs only for debugging the harness: published figures use the default 5.
  let runs = 5
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--quick') quick = true
    else if (arg === '--only') only.push(...(argv[++i] ?? '').split(','))
    else if (arg === '--runs') runs = Math.max(1, Number.parseInt(argv[++i] ?? '5', 10) || 5)
    else if (arg === '--help') {
      console.log(`usage: npm run bench -- [--quick] [--only ${Object.keys(WORKLOADS).join('|')}[,...]] [--runs n (debugging only; default 5)]`)
      process.exit(0)
    } else throw new Error(`unknown argument ${arg} (try --help)`)
  }
  for (const name of only) if (!(name in WORKLOADS)) throw new Error(`unknown workload "${name}"; one of: ${Object.keys(WORKLOADS).join(', ')}`)
  return { quick, only, runs }
}

async function main(): Promise<void> {
  const benchDir = dirname(fileURLToPath(import.meta.url))
  const root = join(benchDir, '..')
  const { quick, only, runs } = parseArgs(process.argv.slice(2))
  const selected = Object.entries(WORKLOADS).filter(([name]) => only.length === 0 || only.includes(name))
  const started = Date.now()
  const log = (message: string): void => {
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`)
  }
  const repeats = { warmup: 1, runs }

  const needsBrowser = selected.some(([, w]) => w.needsBrowser)
  const outDir = join(benchDir, 'results', 'build')
  if (needsBrowser) {
    log('building pages with Vite')
    await buildPages(join(benchDir, 'pages'), outDir)
  }
  const site = await serveStatic(outDir)
  const servers = new Map<SystemName, ProxiedServer | { unavailable: string }>()
  if (needsBrowser) {
    for (const system of SYSTEMS) {
      try {
        const server = await startServer(system)
        const proxy = await startCountingProxy(server.port)
        servers.set(system, { server, proxy, url: proxy.url(server.path) })
      } catch (error) {
        servers.set(system, { unavailable: `server failed to start: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` })
      }
    }
  }
  const sections: string[] = []
  const context: BenchContext = { quick, repeats, origin: site.origin, servers, root, log, addSection: (markdown) => void sections.push(markdown) }
  const rows: ResultRow[] = []
  const timings: Record<string, number> = {}
  for (const [name, workload] of selected) {
    log(`workload ${name}`)
    const t0 = Date.now()
    try {
      rows.push(...(await workload.run(context)))
    } catch (error) {
      const why = error instanceof Error ? (error.stack ?? error.message) : String(error)
      log(`workload ${name} failed: ${why}`)
      rows.push({ workload: name, metric: 'whole workload', unit: '-', lowerIsBetter: true, cells: { outpost: { unavailable: why.split('\n')[0] ?? why } } })
    }
    timings[name] = Date.now() - t0
  }
  for (const entry of servers.values()) {
    if ('unavailable' in entry) continue
    await entry.proxy.close()
    await entry.server.close()
  }
  await site.close()

  const machine = {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    chromium: needsBrowser ? await chromiumVersion() : 'not used',
    mode: quick ? 'quick' : 'full',
    repeats,
  }
  const table = markdownTable(rows)
  await mkdir(join(benchDir, 'results'), { recursive: true })
  await writeFile(join(benchDir, 'results', 'latest.json'), JSON.stringify({ machine, timingsMs: timings, totalMs: Date.now() - started, rows, table }, null, 2))
  const report = [
    `## Outpost benchmarks (${machine.mode}) — ${machine.date}`,
    '',
    `Machine: ${machine.nproc} × ${machine.cpu} (nproc ${machine.nproc}), ${machine.memoryGiB} GiB, Node ${machine.node}, Chromium ${machine.chromium}`,
    '',
    `Cells: median (min–max) of ${repeats.runs} runs after ${repeats.warmup} warm-up; ratios are of medians measured in the same run. ↓ lower is better, ↑ higher is better.`,
    '',
    table,
    ...sections.flatMap((section) => ['', section]),
    '',
    `Total ${((Date.now() - started) / 1000).toFixed(0)} s; per workload: ${Object.entries(timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(0)} s`).join(', ')}`,
  ].join('\n')
  console.log(`\n${report}`)
  // Only a complete full run replaces the published table.
  if (!quick && only.length === 0 && runs >= 5) {
    await writeFile(join(benchDir, 'RESULTS.md'), `# Latest full benchmark run\n\nWritten by \`npm run bench\` (see README.md for what each row measures).\n\n${report}\n`)
    log('wrote bench/RESULTS.md')
  }
}

// Ctrl-C or a timeout: exit through 'exit' handlers so child servers are stopped too.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)

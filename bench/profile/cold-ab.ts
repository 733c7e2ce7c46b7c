/**
 * Cold start A/B in Chromium: page load → first query result (workload 5's measure,
 * offline, `bench.firstQuery()`), for two builds of the bench pages over ONE IndexedDB
 * database, alternated round by round, with the load average beside each figure.
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/cold-ab.ts build <dir>
 *   node --conditions=@outpost/source --import tsx bench/profile/cold-ab.ts run <dirA> <dirB> [--records 100000] [--rounds 3] [--profile <outDir>]
 *
 * `build` builds the pages of the source tree it runs in, unminified, with relative asset
 * paths. `run` serves the two builds from one origin (as /a/ and /b/), so both read the
 * same database; one initial sync from the relay (its CLI over N planted records, as
 * workload 7) fills it, with build B. Between cold starts the SharedWorker is given time
 * to stop, so each start is cold. `--profile` saves a CPU profile of each build's last
 * cold start's SharedWorker, with a summary.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'
import { sourceResolution } from '../../scripts/source-conditions'
import { PAGE_NAMES, serveStatic } from '../lib/browser'
import type { SystemPage } from '../pages/api'
import { plant, startRelay } from '../workloads/million'
import { launchWithCdp, profileWorker } from './cdp'
import { summarize } from './cpu-profile'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : (process.argv[i + 1] ?? fallback)
}
type Bench = { bench: SystemPage }

if (process.argv[2] === 'build') {
  const pagesDir = join(root, 'bench', 'pages')
  const input: Record<string, string> = {}
  for (const name of PAGE_NAMES) input[name] = join(pagesDir, `${name}.html`)
  await build({
    root: pagesDir,
    base: './',
    logLevel: 'error',
    configFile: false,
    ...sourceResolution,
    build: { outDir: process.argv[3] as string, emptyOutDir: true, target: 'es2022', minify: false, rollupOptions: { input }, reportCompressedSize: false, chunkSizeWarningLimit: 10_000 },
    worker: { format: 'es' },
  })
  process.exit(0)
}

const [dirA, dirB] = [process.argv[3] as string, process.argv[4] as string]
const n = Number(arg('--records', '100000'))
const rounds = Number(arg('--rounds', '3'))
const profileOut = arg('--profile', '')
const served = await mkdtemp(join(tmpdir(), 'outpost-cold-ab-site-'))
await cp(dirA, join(served, 'a'), { recursive: true })
await cp(dirB, join(served, 'b'), { recursive: true })
const dataDir = await mkdtemp(join(tmpdir(), 'outpost-cold-ab-relay-'))
const browserDir = await mkdtemp(join(tmpdir(), 'outpost-cold-ab-chromium-'))
const site = await serveStatic(served)
const load = (): string => loadavg().map((x) => x.toFixed(1)).join(' ')
try {
  await plant(dataDir, n)
  const relay = await startRelay(root, dataDir)
  const { context, cdp } = await launchWithCdp(browserDir)
  try {
    const sync = await context.newPage()
    await sync.goto(`${site.origin}/b/outpost.html`)
    await sync.waitForFunction('globalThis.bench !== undefined')
    const syncMs = await sync.evaluate(async ({ url, n }) => {
      const bench = (globalThis as unknown as Bench).bench
      const t0 = performance.now()
      await bench.open({ url, db: 'ab', doc: 'items' })
      await bench.waitSynced(n)
      await bench.close()
      return performance.now() - t0
    }, { url: `ws://127.0.0.1:${relay.port}`, n })
    await sync.close()
    relay.child.kill('SIGTERM')
    console.log(`initial sync of ${n} (build b): ${syncMs.toFixed(0)} ms, load ${load()}`)
    const figures: Record<'a' | 'b', number[]> = { a: [], b: [] }
    for (let round = 0; round < rounds; round++) {
      for (const label of round % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const)) {
        await new Promise((resolve) => setTimeout(resolve, 2_000))
        const page = await context.newPage()
        const last = round >= rounds - 2 && profileOut !== ''
        await page.goto(`${site.origin}/${label}/outpost.html`)
        await page.waitForFunction('globalThis.bench !== undefined')
        const stopping = last ? profileWorker(cdp) : undefined
        const { ms, rows } = await page.evaluate(async () => {
          const bench = (globalThis as unknown as Bench).bench
          const loaded = (globalThis as unknown as { benchLoadedAt: number }).benchLoadedAt
          const t0 = performance.now()
          await bench.open({ url: null, db: 'ab', doc: 'items' })
          const rows = await bench.firstQuery()
          return { ms: loaded + (performance.now() - t0), rows }
        })
        if (rows === 0) throw new Error('the first query returned no rows')
        figures[label].push(ms)
        console.log(`round ${round} ${label}: cold ${ms.toFixed(0)} ms (${rows} rows), load ${load()}`)
        if (stopping !== undefined) {
          const profile = await (await stopping).stop()
          await mkdir(profileOut, { recursive: true })
          const file = join(profileOut, `cold-${label}-${n}.cpuprofile`)
          await writeFile(file, JSON.stringify(profile))
          console.log(`=== ${label} profile ${file}\n${summarize(profile, 15)}`)
        }
        await page.evaluate(async () => (globalThis as unknown as Bench).bench.close())
        await page.close()
      }
    }
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number
    console.log(`median cold start N=${n}: a ${median(figures.a).toFixed(0)} ms, b ${median(figures.b).toFixed(0)} ms (b/a ${(median(figures.b) / median(figures.a)).toFixed(2)})`)
    cdp.socket.close()
  } finally {
    await context.close()
    relay.child.kill('SIGTERM')
  }
} finally {
  await site.close()
  for (const dir of [served, dataDir, browserDir]) await rm(dir, { recursive: true, force: true })
}

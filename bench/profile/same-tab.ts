/**
 * Where a same-tab write → live query update (workload 2) spends its time in the page: a
 * CPU profile of the tab while it makes N writes, each timed from `set` until its live
 * query shows it (offline: no relay), with p50/p99 and a summary by function and by file.
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/same-tab.ts [--writes 500] [--out /tmp/outpost-profiles]
 *
 * Pages are built unminified (functions keep their names) into bench/results/profile-build
 * and served cross-origin isolated (5 µs clock), as in the benchmark.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildPages, launchDevice, serveStatic } from '../lib/browser'
import { quantile } from '../lib/stats'
import type { Armed, SystemPage } from '../pages/api'
import { summarize, type CpuProfile } from './cpu-profile'

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : (process.argv[i + 1] ?? fallback)
}
const writes = Number(arg('--writes', '500'))
const out = arg('--out', join(tmpdir(), 'outpost-profiles'))
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const RECORDS = 1000

type Bench = { bench: SystemPage & { __armed?: Armed } }

const build = join(root, 'bench', 'results', 'profile-build')
await buildPages(join(root, 'bench', 'pages'), build, { minify: false })
const site = await serveStatic(build)
const device = await launchDevice(site.origin)
try {
  const page = await device.open('outpost')
  await page.evaluate(async (records) => {
    const bench = (globalThis as unknown as Bench).bench
    await bench.open({ url: null, db: `same-tab-${Date.now()}`, doc: 'items' })
    for (let i = 0; i < records; i++) await bench.write(i, 0)
  }, RECORDS)
  const run = (count: number, from: number): Promise<number[]> =>
    page.evaluate(
      async ({ count, from, records }) => {
        const bench = (globalThis as unknown as Bench).bench
        const out: number[] = []
        for (let k = 0; k < count; k++) {
          const i = (k * 37) % records
          const armed = await bench.watch([i], from + k)
          const t0 = performance.timeOrigin + performance.now()
          await bench.write(i, from + k)
          out.push((await armed.done) - t0)
        }
        return out
      },
      { count, from, records: RECORDS },
    )
  await run(100, 1) // warm-up
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Profiler.enable')
  await cdp.send('Profiler.setSamplingInterval', { interval: 50 })
  await cdp.send('Profiler.start')
  const times = await run(writes, 1000)
  const { profile } = (await cdp.send('Profiler.stop')) as unknown as { profile: CpuProfile }
  await mkdir(out, { recursive: true })
  const file = join(out, `same-tab-${writes}.cpuprofile`)
  await writeFile(file, JSON.stringify(profile))
  const crossOriginIsolated = await page.evaluate(() => globalThis.crossOriginIsolated)
  console.log(`same-tab write → live query, ${writes} writes (cross-origin isolated: ${crossOriginIsolated}): p50 ${quantile(times, 0.5).toFixed(3)} ms, p99 ${quantile(times, 0.99).toFixed(3)} ms`)
  console.log(`profile: ${file}\n${summarize(profile)}`)
} finally {
  await device.close()
  await site.close()
}

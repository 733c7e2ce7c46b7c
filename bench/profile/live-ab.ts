/**
 * Workload 2 (same tab and second tab, Outpost only) on two pre-built page directories,
 * alternated round by round in one process, for an A/B comparison of two commits:
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/live-ab.ts <dirA> <dirB> [--rounds 3] [--writes 50]
 *
 * Build each directory first with `--build <dir>` (from the checked-out sources). Same
 * measurement as bench/workloads/live-write.ts (timed inside the page; second tab through
 * the harness, as there), offline, 1,000 records.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadavg } from 'node:os'
import { buildPages, launchDevice, serveStatic } from '../lib/browser'
import { quantile } from '../lib/stats'
import { timedWrite } from '../lib/synced-pairs'
import type { Armed, SystemPage } from '../pages/api'

type Bench = { bench: SystemPage & { __armed?: Armed } }
const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : (process.argv[i + 1] ?? fallback)
}
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
if (process.argv.includes('--build')) {
  await buildPages(join(root, 'bench', 'pages'), arg('--build', ''), { minify: true })
  process.exit(0)
}
const [dirA, dirB] = process.argv.slice(2, 4) as [string, string]
const rounds = Number(arg('--rounds', '3'))
const writes = Number(arg('--writes', '50'))
const RECORDS = 1000

async function measure(dir: string): Promise<{ same: number[]; tab: number[] }> {
  const site = await serveStatic(dir)
  const device = await launchDevice(site.origin)
  try {
    const db = `live-ab-${Date.now()}`
    const a = await device.open('outpost')
    const b = await device.open('outpost')
    for (const page of [a, b]) await page.evaluate(async (db) => (globalThis as unknown as Bench).bench.open({ url: null, db, doc: 'items' }), db)
    await a.evaluate(async (records) => {
      for (let i = 0; i < records; i++) await (globalThis as unknown as Bench).bench.write(i, 0)
    }, RECORDS)
    let rev = 1
    const same: number[] = []
    const tab: number[] = []
    for (let k = -10; k < writes; k++) {
      const i = ((k + 10) * 37) % RECORDS
      const s = await a.evaluate(async ({ i, rev }) => {
        const bench = (globalThis as unknown as Bench).bench
        const armed = await bench.watch([i], rev)
        const t0 = performance.timeOrigin + performance.now()
        await bench.write(i, rev)
        return (await armed.done) - t0
      }, { i, rev: rev++ })
      const t = await timedWrite(a, b, i, rev++)
      if (k >= 0) {
        same.push(s)
        tab.push(t)
      }
    }
    return { same, tab }
  } finally {
    await device.close()
    await site.close()
  }
}

const f = (xs: number[]): string => `p50 ${quantile(xs, 0.5).toFixed(3)} p99 ${quantile(xs, 0.99).toFixed(3)}`
for (let r = 0; r < rounds; r++) {
  for (const [name, dir] of [['A', dirA], ['B', dirB]] as const) {
    const load = loadavg()[0]?.toFixed(1)
    const { same, tab } = await measure(dir)
    console.log(`round ${r} ${name}: same-tab ${f(same)} | second tab ${f(tab)} | load ${load}`)
  }
}

/**
 * Where Outpost's SharedWorker spends its time in Chromium: a CPU profile of the worker
 * during an initial sync of N records and during a cold start (offline, first query), with
 * a summary by function and by source file.
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/chromium-worker.ts [--records 100000] [--out /tmp/outpost-profiles]
 *
 * It builds the bench pages unminified (so functions keep their names) into
 * bench/results/profile-build. The relay is its CLI in its own process over N planted records
 * (as workload 7). The profiler attaches to the SharedWorker over the Chrome DevTools
 * Protocol as soon as the worker exists (the first few milliseconds of its start are missed).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildPages, serveStatic } from '../lib/browser'
import type { SystemPage } from '../pages/api'
import { plant, startRelay } from '../workloads/million'
import { launchWithCdp, profileWorker } from './cdp'
import { summarize } from './cpu-profile'

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : (process.argv[i + 1] ?? fallback)
}
const n = Number(arg('--records', '100000'))
const out = arg('--out', join(tmpdir(), 'outpost-profiles'))
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

type Bench = { bench: SystemPage }

const dir = await mkdtemp(join(tmpdir(), 'outpost-profile-relay-'))
const profileDir = await mkdtemp(join(tmpdir(), 'outpost-profile-chromium-'))
await mkdir(out, { recursive: true })
const build = join(root, 'bench', 'results', 'profile-build')
await buildPages(join(root, 'bench', 'pages'), build, { minify: false })
const site = await serveStatic(build)
try {
  await plant(dir, n)
  const relay = await startRelay(root, dir)
  const { context, cdp } = await launchWithCdp(profileDir)
  try {
    for (const phase of ['sync', 'cold'] as const) {
      const page = await context.newPage()
      await page.goto(`${site.origin}/outpost.html`)
      await page.waitForFunction('globalThis.bench !== undefined')
      const profiling = profileWorker(cdp)
      const ms = await page.evaluate(
        async ({ url, n, phase }) => {
          const bench = (globalThis as unknown as Bench).bench
          const t0 = performance.now()
          await bench.open({ url: phase === 'sync' ? url : null, db: 'profile', doc: 'items' })
          if (phase === 'sync') await bench.waitSynced(n)
          else await bench.firstQuery()
          return performance.now() - t0
        },
        { url: `ws://127.0.0.1:${relay.port}`, n, phase },
      )
      const profile = await (await profiling).stop()
      await writeFile(join(out, `worker-${phase}-${n}.cpuprofile`), JSON.stringify(profile))
      console.log(`\n=== ${phase} N=${n}: ${ms.toFixed(0)} ms (profile: ${join(out, `worker-${phase}-${n}.cpuprofile`)})\n${summarize(profile)}`)
      await page.evaluate(async () => (globalThis as unknown as Bench).bench.close())
      await page.close()
      await new Promise((resolve) => setTimeout(resolve, 3_000))
    }
    cdp.socket.close()
  } finally {
    await context.close()
    relay.child.kill('SIGTERM')
  }
} finally {
  await site.close()
  await rm(dir, { recursive: true, force: true })
  await rm(profileDir, { recursive: true, force: true })
}

/**
 * The relay's streaming rate alone: N records planted (as workload 7), the relay CLI in its
 * own process, one Node protocol client with flow control receiving them all; prints the
 * time, records/s, the time from `subscribe` to the first `changes` frame, and the relay's
 * peak RSS / anonymous RSS. Pass relay flags with
 * `OUTPOST_BENCH_RELAY_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof'` to profile it.
 * `--relay-root <dir>[,<dir>…]` runs the relay of other checkouts (same store format) against
 * the same planted data and client, taking turns run by run (A/B alternated).
 *   node --conditions=@outpost/source --import tsx bench/profile/relay-stream.ts [--records 100000] [--runs 1] [--relay-root ../other]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { readFileSync } from 'node:fs'
import { rssAnonKiB, rssKiB } from '../lib/process-memory'
import { plant, startRelay, stream } from '../workloads/million'

/** CPU time (user + system, ms) `pid` used so far: less sensitive to a loaded machine than wall time. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
}

const args = process.argv.slice(2)
const arg = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`)
  return at < 0 ? fallback : Number(args[at + 1])
}
const n = arg('records', 100_000)
const runs = arg('runs', 1)
const relayRootAt = args.indexOf('--relay-root')
const roots = relayRootAt < 0 ? [resolve(import.meta.dirname, '../..')] : (args[relayRootAt + 1] as string).split(',').map((dir) => resolve(dir))
const dir = await mkdtemp(join(tmpdir(), 'outpost-relay-stream-'))
try {
  const t0 = performance.now()
  await plant(dir, n)
  console.log(`planted ${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  for (let run = 0; run < runs; run++) {
    const root = roots[run % roots.length] as string
    const relay = await startRelay(root, dir)
    const pid = relay.child.pid as number
    await new Promise((r) => setTimeout(r, 1_000))
    let peak = await rssKiB(pid)
    let peakAnon = await rssAnonKiB(pid)
    const idleAnon = peakAnon
    const sampler = setInterval(() => {
      void rssKiB(pid).then((kib) => (peak = Math.max(peak, kib || 0)))
      void rssAnonKiB(pid).then((kib) => (peakAnon = Math.max(peakAnon, kib || 0)))
    }, 100)
    const cpu0 = cpuMs(pid)
    const result = await stream(relay.port, 'bench-relay-stream')
    const cpu = cpuMs(pid) - cpu0
    clearInterval(sampler)
    console.log(`run ${run + 1} (relay ${root}): ${result.records} records in ${(result.ms / 1000).toFixed(2)} s (${Math.round(result.records / (result.ms / 1000))}/s), first frame ${result.firstMs.toFixed(0)} ms, relay CPU ${(cpu / 1000).toFixed(2)} s, ${(result.bytes / 2 ** 20).toFixed(1)} MiB; relay peak RSS ${(peak / 1024).toFixed(0)} MiB, anon idle ${(idleAnon / 1024).toFixed(0)} peak ${(peakAnon / 1024).toFixed(0)} MiB; client peak heap ${result.peakHeapMiB.toFixed(0)} MiB; load ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`)
    relay.child.kill('SIGTERM')
    await new Promise((r) => relay.child.once('exit', r))
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}

/**
 * L2 — one relay under sustained overload: L1's raw-protocol clients, but offering more
 * ops/s than the relay can commit (default 500 clients × 6 ops/s, one LWW update per `ops`
 * frame, no waiting for acks, every client as the one anonymous subject). The relay's
 * memory must stay bounded however long the overload lasts: past `limits.maxQueuedBytes`
 * of queued work relay-wide it stops reading the sockets that add to it (TCP backpressure)
 * and reads again once half has drained.
 *
 * Asserted (correctness only): every op is acknowledged or refused with a typed error
 * (RATE_LIMITED), none ends with a dropped socket, and the relay holds for every key a
 * value at least as new as the last one acknowledged for it (a newer one may have committed
 * with its ack still on the way). Recorded, never asserted: ops/s acked, ack p50/p99, the
 * relay's RSS and V8 heap over time (from /proc and /metrics) and its peak queued bytes.
 *
 * CI: 200 clients × 6 ops/s for 15 s, `maxQueuedBytes` 8 MiB (full: 500 × 180 s, default 64 MiB); OUTPOST_L2_CLIENTS, OUTPOST_L2_RATE (ops/s per
 * client) and OUTPOST_L2_SECONDS override. Seeded; the seed is printed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { prng, testSeed } from '@outpost/core/testing'
import { LoadFleet } from './support/load-fleet'
import { startRelayProcess } from './support/relay-process'
import { recordResult, reliabilityMode, scaled } from './support/results'
import { percentile, rssMb } from './support/stats'

const CLIENTS = Number(process.env['OUTPOST_L2_CLIENTS'] ?? scaled(500, 200))
const OPS_PER_SECOND = Number(process.env['OUTPOST_L2_RATE'] ?? 6)
const SECONDS = Number(process.env['OUTPOST_L2_SECONDS'] ?? scaled(180, 15))
/** CI engages the relay-wide budget sooner (a smaller one); full runs use the relay's default. */
const MAX_QUEUED = scaled<number | undefined>(undefined, 8 * 1024 * 1024)
const KEYS_PER_CLIENT = 10
const MAP = 'l2'
const SAMPLE_MS = 5_000

/** Reads gauges from the relay's `/metrics` (undefined when it does not answer in time). */
async function metrics(httpUrl: string): Promise<Record<string, number> | undefined> {
  try {
    const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(4_000) })
    const text = await res.text()
    const out: Record<string, number> = {}
    for (const line of text.split('\n')) {
      const match = /^([a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$/.exec(line)
      if (match !== null) out[match[1] as string] = (out[match[1] as string] ?? 0) + Number(match[2])
    }
    return out
  } catch {
    return undefined
  }
}

describe('L2: one relay under sustained overload', () => {
  it(`${CLIENTS} clients × ${OPS_PER_SECOND} ops/s for ${SECONDS} s (${reliabilityMode()})`, { timeout: (SECONDS + 600) * 1_000 }, async () => {
    const seed = testSeed('L2')
    const random = prng(seed)
    const configDir = mkdtempSync(join(tmpdir(), 'outpost-l2-config-'))
    const configFile = join(configDir, 'relay.json')
    // OUTPOST_L2_LIMITS (JSON) adds relay limits, e.g. '{"maxQueuedBytes":1e10}' to see the relay without its relay-wide budget.
    const extraLimits = JSON.parse(process.env['OUTPOST_L2_LIMITS'] ?? '{}') as Record<string, number>
    writeFileSync(configFile, JSON.stringify({ limits: { maxConnectionsPerSubject: CLIENTS + 100, ...(MAX_QUEUED === undefined ? {} : { maxQueuedBytes: MAX_QUEUED }), ...extraLimits } }))
    const relay = await startRelayProcess({ args: ['--config', configFile], env: { OUTPOST_LOG_LEVEL: 'warn' } })
    const httpUrl = relay.url.replace('ws://', 'http://')
    const samples: string[] = []
    let peakRss = 0
    let peakHeap = 0
    let peakQueued = 0
    let budgetEngaged = 0
    const started = performance.now()
    let fleet: LoadFleet | undefined
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const rss = rssMb(relay.pid()) ?? 0
        const m = await metrics(httpUrl)
        const heap = (m?.['nodejs_heap_size_used_bytes'] ?? 0) / 2 ** 20
        const queued = (m?.['outpost_queued_bytes'] ?? 0) / 2 ** 20
        peakRss = Math.max(peakRss, rss)
        peakHeap = Math.max(peakHeap, heap)
        peakQueued = Math.max(peakQueued, m?.['outpost_queued_bytes_peak'] ?? 0)
        budgetEngaged = m?.['outpost_relay_budget_engaged_total'] ?? budgetEngaged
        const line = `t=${((performance.now() - started) / 1000).toFixed(0)}s rss=${rss.toFixed(0)}MB heap=${heap.toFixed(0)}MB queued=${queued.toFixed(1)}MiB frames=${m?.['outpost_queued_frames'] ?? '?'} acks=${m?.['outpost_acks_total'] ?? '?'} budgetPauses=${m?.['outpost_relay_budget_engaged_total'] ?? '?'} load=${loadavg()[0]?.toFixed(1)}`
        samples.push(line)
        console.log(`[L2] ${line}`)
        await sleep(SAMPLE_MS)
      }
    })()
    try {
      // A typed refusal (the relay's error frame names its code) is an answer; a dropped socket is not.
      fleet = await LoadFleet.connect({ url: relay.url, clients: CLIENTS, prefix: `l2-${seed}`, map: MAP, keysPerClient: KEYS_PER_CLIENT, random, refusal: (error) => /refused: RATE_LIMITED/.test(String(error)) })
      const loadStart = performance.now()
      await fleet.run(OPS_PER_SECOND, loadStart + SECONDS * 1_000)
      const loadMs = performance.now() - loadStart
      // The backlog waits in the clients' sockets: give the relay time to work through it.
      await fleet.drain(10 * 60_000)
      const drainMs = performance.now() - loadStart - loadMs
      const lost = await fleet.lost()
      const { sent, acked, refused, unanswered, errors } = fleet.totals()
      const latencies = fleet.latencies
      const figures = {
        ops: `${acked} acked + ${refused} RATE_LIMITED of ${sent} sent (offered ${(sent / (loadMs / 1000)).toFixed(0)}/s, acked ${(acked / ((loadMs + drainMs) / 1000)).toFixed(0)}/s incl. ${(drainMs / 1000).toFixed(0)} s drain)`,
        'ack p50/p99/max': `${percentile(latencies, 50).toFixed(0)} / ${percentile(latencies, 99).toFixed(0)} / ${percentile(latencies, 100).toFixed(0)} ms`,
        'relay peak RSS / heap': `${peakRss.toFixed(0)} / ${peakHeap.toFixed(0)} MB`,
        'peak queued (relay-wide accounting)': `${(peakQueued / 2 ** 20).toFixed(1)} MiB (limit ${MAX_QUEUED === undefined ? 'default' : `${MAX_QUEUED / 2 ** 20} MiB`}), budget engaged ${budgetEngaged}×`,
        'lost / unanswered / errors': `${lost.length} / ${unanswered} / ${errors.length}`,
        load: loadavg().map((l) => l.toFixed(1)).join(' '),
      }
      console.log(`[L2] seed=${seed} ${JSON.stringify(figures)}`)
      for (const line of [...errors, ...lost].slice(0, 20)) console.log(`[L2]   ${line}`)
      const passed = unanswered === 0 && errors.length === 0 && lost.length === 0 && acked + refused === sent
      recordResult({
        id: 'L2',
        what: `${CLIENTS} clients each offer ${OPS_PER_SECOND} ops/s (one LWW update per ops frame, no waiting for acks) to one relay process: more than it commits`,
        target: 'relay memory bounded under sustained overload; every op acked or refused with a typed code, none lost, no socket dropped',
        conditions:
          `${CLIENTS} raw-protocol clients in one Node process on the same machine, ${SECONDS} s of load then drain, ${KEYS_PER_CLIENT} keys per client, ` +
          `relay = outpost-server CLI on LMDB, maxQueuedBytes ${MAX_QUEUED === undefined ? 'default (64 MiB)' : `${MAX_QUEUED / 2 ** 20} MiB`}, sampled every ${SAMPLE_MS / 1000} s from /proc and /metrics, seed ${seed}`,
        figures,
        passed,
        ...(passed ? {} : { failedSeeds: [seed] }),
      })
      expect({ unanswered, errors: errors.slice(0, 5), lost: lost.slice(0, 5), answered: acked + refused }).toEqual({ unanswered: 0, errors: [], lost: [], answered: sent })
    } finally {
      sampling = false
      await sampler
      await fleet?.close()
      await relay.dispose()
      rmSync(configDir, { recursive: true, force: true })
    }
  })
})

/**
 * L1 — sustained load on one relay process. Many clients each send 2 ops/s (one LWW update
 * per `ops` frame, to keys of their own) for the run's duration; the scenario measures ack
 * latency (p50/p99/max) and the relay's resident memory over time (VmRSS from /proc, and
 * its least-squares slope in MB/min after a warm-up fifth), and asserts correctness only:
 * every op is acknowledged without error, and the relay holds, for every key, the last
 * value acknowledged for it (nothing lost, nothing reordered). Timings are figures, never
 * gates.
 *
 * The clients are light raw-protocol clients (a `ws` socket and core's codec: hello, ops,
 * ack; see support/raw-client.ts), not SDK engines: 500 in-page engines with their
 * IndexedDB in one Node process would measure the load generator, not the relay.
 *
 * Full (`npm run reliability`): 500 clients × 2 ops/s for 30 min. CI: 100 clients for 1 min.
 * OUTPOST_L1_CLIENTS and OUTPOST_L1_MINUTES override either. Seeded (stagger and keys):
 * the seed is printed; OUTPOST_SEED replays it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { prng, testSeed } from '@outpost/core/testing'
import { LoadFleet } from './support/load-fleet'
import { startRelayProcess } from './support/relay-process'
import { recordResult, reliabilityMode, scaled } from './support/results'
import { percentile, rssMb, slope } from './support/stats'

const CLIENTS = Number(process.env['OUTPOST_L1_CLIENTS'] ?? scaled(500, 100))
const MINUTES = Number(process.env['OUTPOST_L1_MINUTES'] ?? scaled(30, 1))
const OPS_PER_SECOND = 2
const KEYS_PER_CLIENT = 10
const MAP = 'l1'
const SAMPLE_MS = scaled(15_000, 5_000)

describe('L1: one relay under sustained load', () => {
  it(`${CLIENTS} clients × ${OPS_PER_SECOND} ops/s for ${MINUTES} min (${reliabilityMode()})`, { timeout: (MINUTES + 10) * 60_000 }, async () => {
    const seed = testSeed('L1')
    const random = prng(seed)
    const configDir = mkdtempSync(join(tmpdir(), 'outpost-l1-config-'))
    const configFile = join(configDir, 'relay.json')
    // Every load client connects as the one anonymous subject: lift the per-subject connection cap for them.
    writeFileSync(configFile, JSON.stringify({ limits: { maxConnectionsPerSubject: CLIENTS + 100 } }))
    const relay = await startRelayProcess({ args: ['--config', configFile], env: { OUTPOST_LOG_LEVEL: 'warn' } })
    const rss: [minutes: number, mb: number][] = []
    const started = performance.now()
    let sampler: NodeJS.Timeout | undefined
    let fleet: LoadFleet | undefined
    try {
      const sample = (): void => {
        const mb = rssMb(relay.pid())
        if (mb !== undefined) rss.push([(performance.now() - started) / 60_000, mb])
      }
      sample()
      sampler = setInterval(sample, SAMPLE_MS)
      fleet = await LoadFleet.connect({ url: relay.url, clients: CLIENTS, prefix: `l1-${seed}`, map: MAP, keysPerClient: KEYS_PER_CLIENT, random })
      const loadStart = performance.now()
      await fleet.run(OPS_PER_SECOND, loadStart + MINUTES * 60_000)
      const loadMs = performance.now() - loadStart
      // Outstanding acks get time to arrive; anything still unanswered then counts as lost.
      await fleet.drain(60_000)
      sample()
      clearInterval(sampler)
      sampler = undefined

      // Nothing lost: the relay holds, for every key, at least the last value it acknowledged.
      const lost = await fleet.lost()
      const { sent, acked, unanswered, errors } = fleet.totals()
      const latencies = fleet.latencies
      const warm = rss.filter(([minute]) => minute >= (MINUTES * 0.2 + (loadStart - started) / 60_000))
      const mbPerMin = slope(warm.length >= 2 ? warm : rss)
      const rssValues = rss.map(([, mb]) => mb)
      const figures = {
        ops: `${acked} acked of ${sent} sent (${(acked / (loadMs / 1000)).toFixed(0)} ops/s)`,
        'ack p50/p99/max': `${percentile(latencies, 50).toFixed(1)} / ${percentile(latencies, 99).toFixed(1)} / ${percentile(latencies, 100).toFixed(0)} ms`,
        'relay RSS start/end/peak': `${(rssValues[0] ?? 0).toFixed(0)} / ${(rssValues.at(-1) ?? 0).toFixed(0)} / ${Math.max(0, ...rssValues).toFixed(0)} MB`,
        'RSS slope': `${mbPerMin.toFixed(2)} MB/min (${warm.length} samples after warm-up)`,
        'lost / errors': `${lost.length + unanswered} / ${errors.length}`,
      }
      console.log(`[L1] seed=${seed} ${JSON.stringify(figures)}`)
      for (const line of [...errors, ...lost].slice(0, 20)) console.log(`[L1]   ${line}`)
      const passed = acked === sent && unanswered === 0 && errors.length === 0 && lost.length === 0
      recordResult({
        id: 'L1',
        what: `${CLIENTS} clients each send ${OPS_PER_SECOND} ops/s (one LWW update per ops frame) to one relay process; ack latency and relay RSS over time`,
        target: 'every op acked, none lost; latency and RSS slope recorded',
        conditions:
          `${CLIENTS} raw-protocol clients (ws + core codec; SDK engines would load the generator, not the relay) in one Node process on the same machine, ` +
          `${MINUTES} min, ${KEYS_PER_CLIENT} keys per client, relay = outpost-server CLI on LMDB (fsync per commit), RSS sampled every ${SAMPLE_MS / 1000} s, seed ${seed}`,
        figures,
        passed,
        ...(passed ? {} : { failedSeeds: [seed] }),
      })
      expect({ sent, unanswered, errors: errors.slice(0, 5), lost: lost.slice(0, 5) }).toEqual({ sent: acked, unanswered: 0, errors: [], lost: [] })
    } finally {
      if (sampler !== undefined) clearInterval(sampler)
      await fleet?.close()
      await relay.dispose()
      rmSync(configDir, { recursive: true, force: true })
    }
  })
})

/**
 * N1 — convergence under faults. Per seed: ≥ 8 SDK devices (in-page engines on
 * fake-indexeddb; whole-map ones and shape-only ones, some with clocks up to ±5 min off)
 * write LWW records and counters at random through a proxy that drops, duplicates,
 * reorders and delays frames, resets and blackholes connections; devices go offline and
 * come back and are closed and reopened; the relay process is SIGKILLed and restarted on
 * the same LMDB data and port. After healing, every device must equal the relay (a
 * shape-only device: the relay's data filtered by its shape), every counter must be the
 * exact sum of the increments that committed locally, and the relay's LMDB must hold what
 * it served. See support/fault-scenario.ts for one seed.
 *
 * Full (`npm run reliability`): 200 seeds (OUTPOST_N1_SEEDS to change). CI: 20 short seeds.
 * Each seed is printed; `OUTPOST_SEED=<seed>` runs that seed alone.
 */
import { describe, expect, it } from 'vitest'
import { testSeed } from '@outpost/core/testing'
import { checkStore, runFaultSeed, type FaultSeedOutcome, type FaultSeedParams } from './support/fault-scenario'
import { startRelayProcess } from './support/relay-process'
import { recordResult, reliabilityMode, scaled } from './support/results'
import { percentile } from './support/stats'

const replay = process.env['OUTPOST_SEED'] !== undefined && process.env['OUTPOST_SEED'] !== ''
const SEEDS = replay ? 1 : Number(process.env['OUTPOST_N1_SEEDS'] ?? scaled(200, 20))
const PARAMS: FaultSeedParams = scaled(
  { wholeMapDevices: 6, shapeDevices: 4, steps: 120, maxKills: 3, killChance: 0.04, staleMs: 15_000, convergeMs: 60_000 },
  // CI: a relay start takes seconds on a loaded 2-core machine, so about one seed in ten kills it.
  { wholeMapDevices: 5, shapeDevices: 3, steps: 30, maxKills: 1, killChance: 0.004, staleMs: 4_000, convergeMs: 30_000 },
)
/** A full run stops starting seeds after this long (the seeds run are what is recorded). */
const BUDGET_MS = Number(process.env['OUTPOST_N1_BUDGET_MIN'] ?? scaled(120, 10)) * 60_000

function sum(outcomes: readonly FaultSeedOutcome[], pick: (o: FaultSeedOutcome) => number): number {
  return outcomes.reduce((total, o) => total + pick(o), 0)
}

describe('N1: devices converge with the relay after frame faults, crashes, offline windows and skewed clocks', () => {
  it(`${SEEDS} seeds (${reliabilityMode()})`, { timeout: BUDGET_MS + 15 * 60_000 }, async () => {
    const first = testSeed('N1')
    const outcomes: FaultSeedOutcome[] = []
    const started = Date.now()
    const relay = await startRelayProcess()
    try {
      for (let i = 0; i < SEEDS; i++) {
        if (Date.now() - started > BUDGET_MS) break
        const seed = (first + i) >>> 0
        const outcome = await runFaultSeed(seed, PARAMS, relay)
        outcomes.push(outcome)
        const f = outcome.faults
        console.log(
          `[N1] seed=${seed} ${outcome.problems.length === 0 ? 'ok' : 'DIVERGED'} in ${outcome.elapsedMs} ms (replay with OUTPOST_SEED=${seed}): ` +
            `${outcome.writes} writes, ${outcome.increments.committed} increments (${outcome.increments.neverPersisted} never saw persisted), ` +
            `${outcome.kills} relay kills, ${outcome.deviceRestarts} device restarts, ${outcome.offlineWindows} offline windows, max skew ${Math.round(outcome.maxSkewMs / 1000)} s, ` +
            `frames ${f.frames}: ${f.dropped} dropped, ${f.duplicated} duplicated, ${f.reordered} reordered, ${f.delayed} delayed, ${f.resets} resets, ${f.blackholes} blackholes; ` +
            `converged ${outcome.convergedMs ?? '—'} ms after healing`,
        )
        for (const line of outcome.problems) console.log(`[N1] seed=${seed}   ${line}`)
        if (outcome.staleUntilReconnect.length > 0) {
          console.log(`[N1] seed=${seed}   stale until reconnect (converged after a connection reset; known defect, see README):`)
          for (const line of outcome.staleUntilReconnect.slice(0, 6)) console.log(`[N1] seed=${seed}     ${line}`)
        }
      }
      // The relay's own store, read directly after a clean stop, must hold what it served.
      await relay.stop()
      const stored = await checkStore(relay.dataDir, outcomes)
      for (const outcome of outcomes) {
        const lines = stored.get(outcome.seed)
        if (lines === undefined) continue
        outcome.problems.push(...lines)
        for (const line of lines) console.log(`[N1] seed=${outcome.seed}   ${line}`)
      }
    } finally {
      await relay.dispose()
    }
    const failed = outcomes.filter((o) => o.problems.length > 0)
    const stale = outcomes.filter((o) => o.staleUntilReconnect.length > 0).map((o) => o.seed)
    const converged = outcomes.flatMap((o) => (o.convergedMs === null ? [] : [o.convergedMs]))
    const devices = PARAMS.wholeMapDevices + PARAMS.shapeDevices
    recordResult({
      id: 'N1',
      what: 'SDK devices (whole-map and shape-only) write LWW records and counters through a frame-fault proxy while the relay is SIGKILLed/restarted, devices go offline/restart and clocks are skewed; after healing all must equal the relay',
      target: '0 divergences after healing (+ one reconnect); counters exact',
      conditions:
        `${outcomes.length} seeds${outcomes.length < SEEDS ? ` of ${SEEDS} (time budget ${BUDGET_MS / 60_000} min)` : ''}, ` +
        `${devices} devices each (${PARAMS.wholeMapDevices} whole-map, ${PARAMS.shapeDevices} shape-only; in-page engines on fake-indexeddb), ` +
        `${PARAMS.steps} steps/seed, ≤ ${PARAMS.maxKills} relay SIGKILLs/seed, clock skew up to ±5 min, relay = outpost-server CLI on LMDB`,
      figures: {
        seeds: String(outcomes.length),
        divergences: String(failed.length),
        writes: String(sum(outcomes, (o) => o.writes)),
        increments: `${sum(outcomes, (o) => o.increments.committed)} (${sum(outcomes, (o) => o.increments.neverPersisted)} never saw persisted, all counted)`,
        'relay kills': String(sum(outcomes, (o) => o.kills)),
        'device restarts': String(sum(outcomes, (o) => o.deviceRestarts)),
        'offline windows': String(sum(outcomes, (o) => o.offlineWindows)),
        'frames faulted': String(sum(outcomes, (o) => o.faults.dropped + o.faults.duplicated + o.faults.reordered + o.faults.delayed + o.faults.resets + o.faults.blackholes)),
        'stale until reconnect': `${stale.length} seeds${stale.length > 0 ? ` (${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ', …' : ''})` : ''}`,
        'converge p50/p99': `${percentile(converged, 50)} / ${percentile(converged, 99)} ms`,
      },
      passed: failed.length === 0 && outcomes.length > 0,
      failedSeeds: failed.map((o) => o.seed),
    })
    expect(failed.map((o) => ({ seed: o.seed, problems: o.problems.slice(0, 12) }))).toEqual([])
  })
})

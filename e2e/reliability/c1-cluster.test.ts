/**
 * C1 — scale-out under failure: three relay processes (the CLI from source) over one
 * Postgres schema of the run's own, Postgres bus. SDK clients spread over the relays write
 * at random and go offline now and then, while relays are SIGKILLed one at a time, again
 * and again — each time the one serving the most clients — and restarted; SDK lock clients on every relay compete for one lock and write to a fenced
 * resource. After healing (every relay up, every client online, every write settled):
 *
 * - no acknowledged write is lost: each write whose `persisted` resolved is in the store
 *   (read from Postgres's tables, not through a relay) and in every client;
 * - no divergence: every client holds exactly what the store holds;
 * - failover: clients live on the killed relay are live again on another relay (each client
 *   has every relay's URL, its own first) — measured and recorded; gated only by a generous
 *   bound;
 * - locks: no double grant (from grant and release times), tokens strictly increase in grant
 *   order, the fenced resource refuses every stale token and no valid one, and the relays'
 *   own fence (`POST /locks/<name>/check`) calls every token paused past its TTL invalid.
 *
 * Short in `npm test`; long under OUTPOST_RELIABILITY=full. Seeded: OUTPOST_SEED replays the
 * schedule (writes, offline windows, kill times), though not the processes' timing.
 */
import { cpus } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { prng, testSeed } from '@outpost/core/testing'
import { recordResult, reliabilityMode, scaled } from './support/results'
import { ClusterClient, recordDifferences, SCENARIO_MAP } from './support-c/cluster-clients'
import { failovers, type KillEvent } from './support-c/failover'
import { auditGrants, runLockWorker, type GrantRecord } from './support-c/lock-contention'
import { POSTGRES_URL, dropSchema, postgresMissing, readStoredMap, runSchema } from './support-c/postgres'
import { RecordingFence } from './support-c/recording-fence'
import { RelayCluster } from './support-c/relay-cluster'

const missing = await postgresMissing('C1')

const P = {
  relays: 3,
  clients: scaled(12, 6),
  lockClients: scaled(6, 3),
  chaosMs: scaled(240_000, 30_000),
  keys: 24,
  scratchKeys: 8,
  /** Pause between one client's writes (ms, uniform). */
  writeGapMs: [40, 250] as const,
  /** Chance per write that the client goes offline, and for how long (ms). */
  offlineChance: 0.01,
  offlineMs: [500, 3_000] as const,
  /** The killed relay stays down, then up, for (ms, uniform). */
  downMs: [800, 2_500] as const,
  upMs: [2_000, 4_000] as const,
  lockTtlMs: 1_500,
  /** Failover bound that fails the test: generous (the target is 2 s, recorded as a figure). */
  failoverBoundMs: 10_000,
}

const cleanup: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch((error: unknown) => console.error('[C1] cleanup:', error))
})

const between = (random: () => number, [lo, hi]: readonly [number, number]): number => lo + random() * (hi - lo)
const quantile = (values: readonly number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
}

describe.skipIf(missing !== undefined)('C1: three relays over one Postgres, the busiest SIGKILLed again and again', () => {
  it('loses no acknowledged write, converges, fails clients over and never grants a lock twice', async () => {
    const seed = testSeed('C1')
    const random = prng(seed)
    const child = (): (() => number) => prng((random() * 2 ** 32) >>> 0)
    const started = Date.now()
    const schema = runSchema('c1')
    const cluster = await RelayCluster.start({ relays: P.relays, store: POSTGRES_URL, schema, bus: 'postgres' })
    cleanup.push(() => dropSchema(schema))
    let keepLogs = true
    cleanup.push(async () => {
      await cluster.stop()
      if (!keepLogs) cluster.removeLogs()
    })
    console.log(`[C1] schema ${schema}; relay logs in ${cluster.logDir} (deleted when the test passes)`)
    const urls = cluster.relays.map((r) => r.url)
    const preference = (home: number): string[] => urls.map((_, k) => urls[(home + k) % urls.length] as string)

    const clients = Array.from({ length: P.clients }, (_, i) => new ClusterClient(`c${i}`, i % P.relays, preference(i % P.relays)))
    const lockClients = Array.from({ length: P.lockClients }, (_, i) => new ClusterClient(`l${i}`, i % P.relays, preference(i % P.relays), false))
    cleanup.push(async () => void (await Promise.all([...clients, ...lockClients].map((c) => c.close()))))
    const allLive = async (who: readonly ClusterClient[], timeoutMs: number): Promise<void> => {
      const deadline = Date.now() + timeoutMs
      while (who.some((c) => c.client.status.get().connection !== 'live')) {
        if (Date.now() > deadline) throw new Error(`not live within ${timeoutMs} ms: ${who.filter((c) => c.client.status.get().connection !== 'live').map((c) => `${c.name}=${c.client.status.get().connection}`).join(', ')}\n${cluster.logTails()}`)
        await sleep(50)
      }
    }
    await allLive([...clients, ...lockClients], 60_000)

    // ── chaos: writers, lock workers and the relay killer, until chaosEnd ──
    const chaosEnd = Date.now() + P.chaosMs
    const stopped = (): boolean => Date.now() >= chaosEnd
    const writers = clients.map(async (c) => {
      const r = child()
      while (!stopped()) {
        await sleep(between(r, P.writeGapMs))
        if (!c.offline && r() < P.offlineChance) {
          await c.setOffline(true)
          const back = Date.now() + between(r, P.offlineMs)
          void sleep(Math.max(0, back - Date.now())).then(() => c.setOffline(false))
        }
        await c.writeOnce(r, P.keys, P.scratchKeys)
      }
    })
    const fence = new RecordingFence()
    const grants: GrantRecord[] = []
    const lockFailures = new Map<string, number>()
    const pausedChecks: Promise<{ token: number; valid: boolean | undefined }>[] = []
    // The relays' own fencing check, asked of whichever relay is up (retried across a kill).
    const relayFenceSays = async (token: number): Promise<{ token: number; valid: boolean | undefined }> => {
      for (let attempt = 0; attempt < 20; attempt++) {
        const relay = cluster.relays.find((candidate) => candidate.pid !== undefined)
        if (relay !== undefined) {
          try {
            const res = await fetch(`${relay.httpUrl}/locks/c1-lock/check`, { method: 'POST', body: JSON.stringify({ token }), headers: { 'content-type': 'application/json' } })
            if (res.ok) return { token, valid: ((await res.json()) as { valid?: boolean }).valid }
          } catch {
            // That relay was killed meanwhile: ask another.
          }
        }
        await sleep(250)
      }
      return { token, valid: undefined }
    }
    const workers = lockClients.map((c) =>
      runLockWorker({
        name: c.name,
        client: c.client,
        lock: 'c1-lock',
        ttlMs: P.lockTtlMs,
        writesPerLease: 3,
        pauseChance: 0.2,
        random: child(),
        fence,
        grants,
        failures: lockFailures,
        stopped,
        onPausedWrite: (token) => void pausedChecks.push(relayFenceSays(token)),
      }),
    )
    const kills: KillEvent[] = []
    const restartMs: number[] = []
    const killer = (async () => {
      const r = child()
      for (;;) {
        await sleep(between(r, P.upMs))
        if (stopped()) break
        // The relay serving the most clients now (clients that failed over pile up elsewhere).
        const load = cluster.relays.map((relay) => [...clients, ...lockClients].filter((c) => c.client.status.get().relayUrl === relay.url).length)
        const busiest = Math.max(...load)
        const candidates = cluster.relays.filter((_, k) => load[k] === busiest)
        const victim = candidates[Math.floor(r() * candidates.length)] ?? cluster.relay(0)
        const kill: KillEvent = { at: Date.now(), relay: victim.index, url: victim.url }
        await cluster.kill(victim.index)
        kills.push(kill)
        await sleep(between(r, P.downMs))
        const t0 = Date.now()
        await cluster.restart(victim.index)
        kill.restartedAt = Date.now()
        restartMs.push(kill.restartedAt - t0)
      }
    })()
    await Promise.all([...writers, killer])
    await Promise.all(workers)

    // ── heal: every relay up, every client online, every write settled ──
    await cluster.ready(60_000)
    await Promise.all(clients.map((c) => c.setOffline(false)))
    const settled = await Promise.all(clients.map((c) => c.settle(60_000)))
    await allLive(clients, 30_000)
    const store = await readStoredMap(schema, SCENARIO_MAP)

    // Acknowledged writes in the store: w_<client> on each key at least the largest acked n.
    const lostInStore: string[] = []
    for (const c of clients) {
      for (const [key, n] of c.acked) {
        const stored = store.get(key)?.[c.field]
        if (typeof stored !== 'number' || stored < n) lostInStore.push(`${key}.${c.field}: acked ${n}, store ${String(stored)}`)
      }
      // Once settled, the last write of each field is in too (acked or not, nothing was dropped).
      for (const [key, n] of c.written) if (store.get(key)?.[c.field] !== n) lostInStore.push(`${key}.${c.field}: last written ${n}, store ${String(store.get(key)?.[c.field])}`)
    }
    // Agreement: every client converges on the store (bounded wait), then holds every acked write.
    const convergeDeadline = Date.now() + 30_000
    let diverged: { client: string; differences: string[] }[] = []
    for (;;) {
      diverged = []
      for (const c of clients) {
        const differences = recordDifferences(store, await c.contents())
        if (differences.length > 0) diverged.push({ client: c.name, differences })
      }
      if (diverged.length === 0 || Date.now() > convergeDeadline) break
      await sleep(250)
    }
    const lostInClients: string[] = []
    for (const reader of clients) {
      const held = await reader.contents()
      for (const c of clients) for (const [key, n] of c.acked) if (((held.get(key)?.[c.field] as number | undefined) ?? 0) < n) lostInClients.push(`${reader.name} lacks ${key}.${c.field}=${n}`)
    }

    // ── locks ──
    const fenceAudit = fence.audit()
    const grantAudit = auditGrants(grants)
    const paused = await Promise.all(pausedChecks)
    const pausedCalledValid = paused.filter((p) => p.valid !== false)

    // ── failover ──
    const recoveries = failovers(kills, [...clients, ...lockClients], urls)
    const times = recoveries.flatMap((f) => (f.ms === undefined ? [] : [f.ms]))
    const neverBack = recoveries.filter((f) => f.ms === undefined)
    const connected = recoveries.flatMap((f) => (f.connectedMs === undefined ? [] : [f.connectedMs]))
    const movedOver = recoveries.filter((f) => f.sameRelay === false)
    const within2s = times.filter((ms) => ms <= 2_000).length

    const writes = clients.reduce((n, c) => n + c.writes, 0)
    const acked = clients.reduce((n, c) => n + c.ackedWrites, 0)
    const refused = clients.reduce((n, c) => n + c.refused, 0)
    const figures: Record<string, string> = {
      seed: String(seed),
      writes: String(writes),
      'acked writes': String(acked),
      'acked writes lost (store)': String(lostInStore.length),
      'acked writes lost (clients)': String(lostInClients.length),
      'writes refused': String(refused),
      'clients unsettled after 60 s': String(settled.filter((ok) => !ok).length),
      'diverged clients': String(diverged.length),
      'relay kills': `${kills.length} (relays ${kills.map((k) => k.relay).join(', ')})`,
      'relay restart (CLI start → listening) p50': `${Math.round(quantile(restartMs, 0.5))} ms`,
      'offline windows': String(clients.reduce((n, c) => n + c.offlineIntervals.length, 0)),
      'client recoveries measured': String(recoveries.length),
      'welcomed by another relay p50 / p99 / max': connected.length === 0 ? 'n/a' : `${Math.round(quantile(connected, 0.5))} / ${Math.round(quantile(connected, 0.99))} / ${Math.max(...connected)} ms`,
      'live again (re-synced) p50 / p99 / max': times.length === 0 ? 'n/a' : `${Math.round(quantile(times, 0.5))} / ${Math.round(quantile(times, 0.99))} / ${Math.max(...times)} ms`,
      'recovered within 2 s': `${within2s}/${recoveries.length}`,
      'recovered on another relay': `${movedOver.length}/${recoveries.length}`,
      'never recovered': String(neverBack.length),
      'lock grants': String(grantAudit.grants),
      'double grants': String(grantAudit.doubleGrants.length),
      'non-increasing tokens': String(grantAudit.nonIncreasing.length),
      'fence writes / stale / stale accepted / valid refused': `${fenceAudit.attempts} / ${fenceAudit.stale} / ${fenceAudit.staleAccepted} / ${fenceAudit.validRefused}`,
      'paused tokens the relay fence called valid': `${pausedCalledValid.length}/${paused.length}`,
      'lock acquire failures': [...lockFailures].map(([code, n]) => `${code} ${n}`).join(', ') || '0',
      'run time': `${Math.round((Date.now() - started) / 1000)} s`,
    }
    const passed =
      lostInStore.length === 0 &&
      lostInClients.length === 0 &&
      refused === 0 &&
      diverged.length === 0 &&
      settled.every(Boolean) &&
      neverBack.length === 0 &&
      times.every((ms) => ms <= P.failoverBoundMs) &&
      movedOver.length === recoveries.length &&
      grantAudit.doubleGrants.length === 0 &&
      grantAudit.nonIncreasing.length === 0 &&
      fenceAudit.staleAccepted === 0 &&
      fenceAudit.freshRefused === 0 &&
      fenceAudit.validRefused === 0 &&
      fenceAudit.acceptedOutOfOrder === 0 &&
      pausedCalledValid.length === 0
    recordResult({
      id: 'C1',
      what: `${P.relays} relay processes over one Postgres (bus: postgres), the busiest relay SIGKILLed and restarted, one at a time, repeatedly; ${P.clients} SDK writers with offline windows, ${P.lockClients} SDK lock clients on one fenced lock`,
      target: '0 acknowledged writes lost, 0 divergence, clients live on another relay within 2 s (figure), 0 double grants, tokens strictly increasing, every stale token refused',
      conditions: `${reliabilityMode()} mode, ${Math.round(P.chaosMs / 1000)} s of chaos, seed ${seed}, down ${P.downMs.join('–')} ms / up ${P.upMs.join('–')} ms per kill, lock TTL ${P.lockTtlMs} ms, ${cpus().length} cores shared with other work`,
      figures,
      passed,
      ...(passed ? {} : { failedSeeds: [seed] }),
    })
    console.log(`[C1] seed=${seed}\n${Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`)

    expect(lostInStore, `acknowledged writes missing from the store (seed ${seed})`).toEqual([])
    expect(lostInClients.slice(0, 10), `acknowledged writes missing from clients (seed ${seed})`).toEqual([])
    expect(refused, 'writes the relay refused').toBe(0)
    expect(settled.every(Boolean), 'every client settles its writes after healing').toBe(true)
    expect(diverged.map((d) => `${d.client}: ${d.differences.length} keys, e.g. ${d.differences.slice(0, 3).join('; ')}`), `clients differing from the store (seed ${seed})`).toEqual([])
    expect(kills.length, 'the relay was killed at least once').toBeGreaterThan(0)
    expect(recoveries.length, 'some clients were live on the killed relay').toBeGreaterThan(0)
    expect(neverBack.map((f) => f.client), 'clients never live again after a kill').toEqual([])
    expect(Math.max(...times), `slowest recovery from a kill (bound ${P.failoverBoundMs} ms; the target, 2 s, is a figure)`).toBeLessThanOrEqual(P.failoverBoundMs)
    expect(movedOver.length, 'recoveries on another relay than the killed one').toBe(recoveries.length)
    expect(grantAudit.doubleGrants, `double grants (seed ${seed})`).toEqual([])
    expect(grantAudit.nonIncreasing, 'tokens strictly increase in grant order').toEqual([])
    expect(grantAudit.grants, 'the lock changed hands').toBeGreaterThan(P.lockClients)
    expect({ staleAccepted: fenceAudit.staleAccepted, freshRefused: fenceAudit.freshRefused, validRefused: fenceAudit.validRefused, outOfOrder: fenceAudit.acceptedOutOfOrder }).toEqual({ staleAccepted: 0, freshRefused: 0, validRefused: 0, outOfOrder: 0 })
    expect(fenceAudit.stale, 'stale tokens reached the fence (else the refusal is untested)').toBeGreaterThan(0)
    expect(fence.resourceAccepted).toBe(fenceAudit.accepted)
    expect(pausedCalledValid, 'tokens paused past their TTL that a relay still called valid').toEqual([])
    keepLogs = false
  })
})

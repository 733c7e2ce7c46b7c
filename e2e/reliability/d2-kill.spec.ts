/**
 * D2 — the browser dies mid-burst. Debian's Chromium, started by this spec on a persistent
 * profile, runs the harness page (the SDK, local only: no relay, so nothing can come back
 * from a server) writing a burst of records with 16 writes in flight; at a seeded random
 * moment the whole browser (its process group) is SIGKILLed. The same profile is opened
 * again and must hold every write whose handle had resolved.
 *
 * "Resolved" is precise: `await map.set(...)` returned in the page (the record and its
 * outbox entry are committed in IndexedDB) and the page's `resolved <key>` console line
 * reached this spec before the kill. Writes that resolved but whose line was still in
 * flight are not counted (they may or may not survive; neither is a failure).
 *
 * Full: 20 kills; CI: 3. Seeded: OUTPOST_SEED replays the kill delays.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { expect, test, type Page } from '@playwright/test'
import { between, prng, testSeed } from './support-b/seed'
import { stopProcess } from '../support/processes'
import { buildHarnessIfNeeded, launchChromium, startHarnessServer } from './support-b/browser'
import { recordResult, reliabilityMode, scaled } from './support/results'

const KILLS = Number(process.env['OUTPOST_D2_KILLS'] ?? scaled(20, 3))
const MAP = 'burst'
const IN_FLIGHT = 16

test.describe.configure({ timeout: scaled(20 * 60_000, 4 * 60_000) })

/** Opens the harness on `db` and waits until it is ready. */
async function openHarness(page: Page, url: string): Promise<{ mode: string; durable: boolean }> {
  await page.goto(url)
  await page.waitForFunction(() => (window as { harness?: unknown }).harness !== undefined, undefined, { timeout: 30_000 })
  // The engine reports its storage once it has opened IndexedDB.
  await page.waitForFunction(() => (window.harness.status() as { durable?: boolean }).durable === true, undefined, { timeout: 30_000 })
  return page.evaluate(() => window.harness.status() as { mode: string; durable: boolean })
}

test('D2: every write that resolved survives a SIGKILL of the browser', async () => {
  const seed = testSeed('D2')
  const random = prng(seed)
  await buildHarnessIfNeeded()
  const work = mkdtempSync(join(tmpdir(), 'outpost-d2-'))
  const server = await startHarnessServer(join(work, 'harness.log'))
  const profile = join(work, 'profile')
  const url = `http://127.0.0.1:${server.port}/?db=d2-${seed}`
  const resolved = new Set<string>()
  const lost: string[] = []
  const perKill: string[] = []
  const modes = new Set<string>()
  try {
    for (let round = 0; round <= KILLS; round++) {
      const chrome = await launchChromium(profile)
      try {
        const page = await chrome.context.newPage()
        const announced: string[] = []
        const failed: string[] = []
        page.on('console', (message) => {
          const text = message.text()
          if (text.startsWith('resolved ')) announced.push(text.slice('resolved '.length))
          else if (text.startsWith('failed ')) failed.push(text)
        })
        const status = await openHarness(page, url)
        modes.add(status.mode)
        // Everything that resolved before any earlier kill must be here.
        const expected = [...resolved]
        const present = new Set(await page.evaluate(([map, keys]) => window.harness.present(map, keys), [MAP, expected] as const))
        const missing = expected.filter((key) => !present.has(key))
        lost.push(...missing)
        if (missing.length > 0) console.error(`D2: after kill ${round}, ${missing.length} resolved writes are missing: ${missing.slice(0, 10).join(', ')}`)
        if (round === KILLS) break

        await page.evaluate(([map, prefix, inFlight]) => window.harness.startBurst(map, prefix, inFlight, 200), [MAP, `k${round}`, IN_FLIGHT] as const)
        // Kill at a random moment once the burst is under way.
        const delay = between(random, 300, 2_000)
        const began = Date.now()
        while (announced.length === 0 && Date.now() - began < 30_000) await sleep(20)
        await sleep(delay)
        const atKill = [...announced]
        await chrome.kill()
        for (const key of atKill) resolved.add(key)
        perKill.push(`${atKill.length}`)
        expect(failed, 'no write failed during the burst').toEqual([])
        expect(atKill.length, `writes resolved before kill ${round}`).toBeGreaterThan(0)
      } finally {
        await chrome.kill()
      }
    }
  } finally {
    stopProcess(server.pid, 'SIGTERM')
    rmSync(work, { recursive: true, force: true })
  }
  console.log(`D2: seed ${seed}: ${KILLS} kills, ${resolved.size} resolved writes (per kill ${perKill.join(', ')}), ${lost.length} lost`)
  recordResult({
    id: 'D2',
    what: 'Chromium (whole process group) SIGKILLed during a write burst (16 in flight), same profile reopened',
    target: 'every write whose handle resolved (committed in IndexedDB, announced before the kill) is present after reopening',
    conditions: `${reliabilityMode()} mode, seed ${seed}, ${KILLS} kills at 0.3–2 s into the burst, local-only client (no relay), runtime mode ${[...modes].join('/')}, IndexedDB storage, Debian Chromium headless`,
    figures: { mode: [...modes].join('/'), kills: String(KILLS), 'resolved writes checked': String(resolved.size), lost: String(lost.length) },
    passed: lost.length === 0,
    ...(lost.length === 0 ? {} : { failedSeeds: [seed] }),
  })
  expect(lost, `replay with OUTPOST_SEED=${seed}`).toEqual([])
})

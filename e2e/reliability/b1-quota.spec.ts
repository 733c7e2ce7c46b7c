/**
 * B1 — the origin's storage quota runs out. The harness page (the SDK, local only) commits
 * some records; then CDP's `Storage.overrideQuotaForOrigin` caps the origin just above what
 * it uses, and the page writes seeded, growing records until the browser refuses one.
 *
 * Asserted: the refused write rejects with the SDK's typed error (`QuotaExceededError`,
 * code `QUOTA_EXCEEDED`), not a bare DOMException or a hang; every record committed
 * before is still there, and the refused one is not; a refused overwrite of a committed
 * record leaves it as it was (the engine's memory does not run ahead of the store); once the quota is lifted, writes
 * commit again; after a reload (a fresh engine reading IndexedDB) all committed records,
 * including those written after the recovery, are there and the refused ones are not.
 *
 * Full: 5 exhaust/recover cycles; CI: 1. Seeded (record sizes): OUTPOST_SEED replays.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test, type Page } from '@playwright/test'
import { stopProcess } from '../support/processes'
import { buildHarnessIfNeeded, startHarnessServer } from './support-b/browser'
import { between, prng, testSeed } from './support-b/seed'
import { recordResult, reliabilityMode, scaled } from './support/results'

const CYCLES = Number(process.env['OUTPOST_B1_CYCLES'] ?? scaled(5, 1))
const MAP = 'quota'
/** Writes tried per cycle before giving up on hitting the quota. */
const MAX_TRIES = 200

test.describe.configure({ timeout: scaled(10 * 60_000, 3 * 60_000) })

async function openHarness(page: Page, url: string): Promise<void> {
  await page.goto(url)
  await page.waitForFunction(() => (window as { harness?: unknown }).harness !== undefined, undefined, { timeout: 30_000 })
  await page.waitForFunction(() => (window.harness.status() as { durable?: boolean }).durable === true, undefined, { timeout: 30_000 })
}

test('B1: a full quota gives a typed error, loses nothing committed, and writes resume once space returns', async ({ page }) => {
  const seed = testSeed('B1')
  const random = prng(seed)
  await buildHarnessIfNeeded()
  const work = mkdtempSync(join(tmpdir(), 'outpost-b1-'))
  const server = await startHarnessServer(join(work, 'harness.log'))
  const origin = `http://127.0.0.1:${server.port}`
  const url = `${origin}/?db=b1-${seed}`
  const committed: string[] = []
  const refused: { key: string; name: string; code: string | undefined; message: string }[] = []
  const findings: string[] = []
  let n = 0
  const write = (key: string, bytes: number) => page.evaluate(([map, k, size]) => window.harness.write(map, k, { key: k, body: 'q'.repeat(size) }), [MAP, key, bytes] as const)
  try {
    await openHarness(page, url)
    const cdp = await page.context().newCDPSession(page)
    for (let i = 0; i < 10; i++) {
      const key = `base-${n++}`
      expect(await write(key, 2_000)).toBeUndefined()
      committed.push(key)
    }

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0)
      // Room for a little more than what is there: the next large writes must hit the wall.
      await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 16 * 1024 })
      let hit: (typeof refused)[number] | undefined
      for (let tries = 0; tries < MAX_TRIES && hit === undefined; tries++) {
        const key = `c${cycle}-${n++}`
        const failure = await write(key, between(random, 100_000, 400_000))
        if (failure === undefined) committed.push(key)
        else hit = failure
      }
      if (hit === undefined) {
        findings.push(`cycle ${cycle}: ${MAX_TRIES} writes never hit the quota`)
        break
      }
      refused.push(hit)
      if (hit.code !== 'QUOTA_EXCEEDED' || hit.name !== 'QuotaExceededError') findings.push(`cycle ${cycle}: the refused write failed with ${hit.name} (${String(hit.code)}): ${hit.message}`)

      // Overwriting a committed record while full is refused too, and leaves the record as it was.
      const victim = 'base-0'
      const overwrite = await write(victim, 300_000)
      if (overwrite === undefined) findings.push(`cycle ${cycle}: a 300 kB overwrite of ${victim} committed past the quota`)
      else if (overwrite.code !== 'QUOTA_EXCEEDED') findings.push(`cycle ${cycle}: the refused overwrite failed with ${overwrite.name} (${String(overwrite.code)})`)
      const kept = (await page.evaluate(([map, key]) => window.harness.read(map, key), [MAP, victim] as const)) as { body?: string } | null
      if (overwrite !== undefined && kept?.body?.length !== 2_000) findings.push(`cycle ${cycle}: after the refused overwrite ${victim} reads ${JSON.stringify(kept).slice(0, 100)}`)

      // Nothing committed is lost, and nothing of the refused write was kept.
      const present = new Set(await page.evaluate(([map, keys]) => window.harness.present(map, keys), [MAP, [...committed, hit.key]] as const))
      const lost = committed.filter((key) => !present.has(key))
      if (lost.length > 0) findings.push(`cycle ${cycle}: committed records missing while full: ${lost.join(', ')}`)
      if (present.has(hit.key)) findings.push(`cycle ${cycle}: the refused record ${hit.key} is there`)

      // Space returns: writes commit again.
      await cdp.send('Storage.overrideQuotaForOrigin', { origin })
      const key = `after-${cycle}-${n++}`
      const again = await write(key, 2_000)
      if (again === undefined) committed.push(key)
      else findings.push(`cycle ${cycle}: after the quota was lifted a write failed with ${again.name} (${String(again.code)}): ${again.message}`)
    }

    // A fresh engine, from IndexedDB alone.
    await openHarness(page, url)
    const present = new Set(await page.evaluate(([map, keys]) => window.harness.present(map, keys), [MAP, [...committed, ...refused.map((r) => r.key)]] as const))
    const lostAfterReload = committed.filter((key) => !present.has(key))
    if (lostAfterReload.length > 0) findings.push(`after reload, committed records missing: ${lostAfterReload.join(', ')}`)
    const revived = refused.filter((r) => present.has(r.key)).map((r) => r.key)
    if (revived.length > 0) findings.push(`after reload, refused records are there: ${revived.join(', ')}`)
  } finally {
    stopProcess(server.pid, 'SIGTERM')
    rmSync(work, { recursive: true, force: true })
  }
  console.log(`B1: seed ${seed}: ${CYCLES} cycles, ${committed.length} committed, refused ${JSON.stringify(refused.map((r) => `${r.name}/${String(r.code)}`))}; findings ${findings.length}`)
  recordResult({
    id: 'B1',
    what: 'storage quota exceeded (CDP Storage.overrideQuotaForOrigin just above usage), then lifted',
    target: 'typed error with a stable code; nothing committed lost; writes work again once quota returns',
    conditions: `${reliabilityMode()} mode, seed ${seed}, ${CYCLES} cycles, records of 100–400 kB, local-only client, Debian Chromium headless`,
    figures: { cycles: String(CYCLES), committed: String(committed.length), 'refused with': [...new Set(refused.map((r) => `${r.name}/${String(r.code)}`))].join(', '), findings: String(findings.length) },
    passed: findings.length === 0,
    ...(findings.length === 0 ? {} : { failedSeeds: [seed] }),
  })
  expect(findings, `replay with OUTPOST_SEED=${seed}`).toEqual([])
})

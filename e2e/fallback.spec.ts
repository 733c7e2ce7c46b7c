/**
 * Scenario 6: no SharedWorker (removed by an init script, as on browsers without one).
 * Three tabs elect one leader with Web Locks; it runs the engine in a dedicated worker and
 * holds the only relay connection, the others follow it over BroadcastChannel and stay in
 * sync; when the leader tab closes, another tab takes over and sync goes on.
 */
import type { Page } from '@playwright/test'
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

/** Who holds the leader lock of this database, as the browser's Web Locks see it. */
function leaderHolders(page: Page, db: string): Promise<string[]> {
  return page.evaluate(async (name) => {
    const snapshot = await navigator.locks.query()
    return (snapshot.held ?? []).filter((lock) => lock.name === name).map((lock) => lock.clientId ?? '?')
  }, `outpost:${db}:leader`)
}

test('without SharedWorker, three tabs elect a leader and a new one takes over', async ({ outpost }) => {
  await expect.poll(() => outpost.metric('outpost_connections')).toBe(0)
  const device = await outpost.newDevice()
  await device.context.addInitScript(() => {
    // As on a browser that has no SharedWorker at all.
    Reflect.deleteProperty(globalThis, 'SharedWorker')
  })
  const db = 'no-shared-worker'
  const tabs: Board[] = []
  for (let i = 0; i < 3; i++) {
    const tab = new Board(await device.open({ db, me: 'Lee' }))
    expect(await tab.page.evaluate(() => typeof (globalThis as { SharedWorker?: unknown }).SharedWorker)).toBe('undefined')
    await expect(tab.mode).toHaveAttribute('data-mode', 'leader-tab')
    await expect(tab.mode).toHaveText('Leader tab')
    await tab.expectConnection('live')
    tabs.push(tab)
  }
  const [first, second, third] = tabs as [Board, Board, Board]

  // One leader for the three tabs, so one relay connection.
  const before = await leaderHolders(second.page, db)
  expect(before).toHaveLength(1)
  await expect.poll(() => outpost.metric('outpost_connections')).toBe(1)

  // Writes from any tab (leader or follower) reach all three.
  const fromFollower = await third.addTask(outpost.unique('Written in a follower tab'))
  await expect(first.task(fromFollower)).toBeVisible()
  await expect(second.task(fromFollower)).toBeVisible()
  await first.editText(fromFollower, 'notes', 'and edited in the leader')
  await second.expectText(fromFollower, 'notes', 'and edited in the leader')
  await third.expectText(fromFollower, 'notes', 'and edited in the leader')
  await third.expectAllSynced()
  await outpost.screenshot(third.page, 'fallback')

  // The first tab opened became the leader; close it.
  await first.page.close()
  await expect.poll(() => leaderHolders(second.page, db)).toHaveLength(1)
  const after = await leaderHolders(second.page, db)
  expect(after).not.toEqual(before)

  // The survivors keep working and syncing through the new leader.
  for (const tab of [second, third]) {
    await expect(tab.mode).toHaveAttribute('data-mode', 'leader-tab')
    await tab.expectConnection('live')
  }
  const afterTakeover = await second.addTask(outpost.unique('Written after the takeover'))
  await expect(third.task(afterTakeover)).toBeVisible()
  await third.setStatus(afterTakeover, 'done')
  await second.expectStatus(afterTakeover, 'done')
  await second.expectAllSynced()
  await expect.poll(() => outpost.metric('outpost_connections')).toBe(1)

  // And the relay has it: another device receives it.
  const other = new Board(await (await outpost.newDevice()).open({ db: 'elsewhere', me: 'Eve' }))
  await other.expectStatus(afterTakeover, 'done')
  await other.expectText(fromFollower, 'notes', 'and edited in the leader')
})

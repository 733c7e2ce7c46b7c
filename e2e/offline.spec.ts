/**
 * Scenario 2: offline. With the device off the network, a person creates and edits tasks;
 * a reload while still offline opens the app (service worker) with everything in it
 * (IndexedDB); back online, the relay acknowledges every change and a second device
 * that was watching receives them live.
 *
 * "Off the network" is `context.setOffline(true)` plus a cut of the device's link to the
 * relay: Chromium's setOffline does not reach a SharedWorker's WebSocket (see
 * support/network-link.ts).
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

test('work offline, reload offline, then sync to the relay and another device', async ({ outpost }) => {
  const laptop = await outpost.newDevice()
  const phone = await outpost.newDevice()
  const me = outpost.unique('Olive')
  const board = new Board(await laptop.open({ db: 'laptop', me }))
  const watcher = new Board(await phone.open({ db: 'phone', me: 'Pat' }))
  await board.expectConnection('live')
  await watcher.expectConnection('live')
  // The first visit online installs the app shell; only then can the app start offline.
  await board.page.evaluate(async () => {
    await navigator.serviceWorker.ready
  })

  await laptop.setOffline(true)
  await expect(board.connection).not.toHaveAttribute('data-state', 'live')

  const groceries = outpost.unique('Buy groceries')
  const bike = outpost.unique('Fix the bike')
  const groceriesId = await board.addTask(groceries)
  const bikeId = await board.addTask(bike)
  await board.editText(groceriesId, 'notes', 'Oat milk, lemons, rice')
  await board.setStatus(bikeId, 'doing')
  await board.setPriority(bikeId, 4)
  // Saved on the device, not yet on the relay.
  await expect.poll(() => board.pendingCount()).toBeGreaterThan(0)

  // Reload with the network still off: the shell comes from the service worker, the
  // tasks from IndexedDB, and the unsent changes are still waiting.
  const response = await board.page.reload()
  expect(response?.fromServiceWorker()).toBe(true)
  await board.expectText(groceriesId, 'title', groceries)
  await board.expectText(groceriesId, 'notes', 'Oat milk, lemons, rice')
  await board.expectText(bikeId, 'title', bike)
  await board.expectStatus(bikeId, 'doing')
  await expect(board.task(bikeId).getByTestId('task-priority')).toHaveValue('4')
  await expect.poll(() => board.pendingCount()).toBeGreaterThan(0)
  await expect(board.connection).not.toHaveAttribute('data-state', 'live')
  // Nothing leaked out while offline.
  await expect(watcher.task(groceriesId)).toHaveCount(0)
  await outpost.screenshot(board.page, 'offline')

  await laptop.setOffline(false)
  await board.expectConnection('live')
  // Every change acknowledged by the relay (persisted there) ...
  await board.expectAllSynced()
  // ... and fanned out to the other device, which was watching the whole time.
  await watcher.expectText(groceriesId, 'notes', 'Oat milk, lemons, rice')
  await watcher.expectStatus(bikeId, 'doing')
  await expect(watcher.task(bikeId).getByTestId('task-priority')).toHaveValue('4')

  // A device that never saw them gets them from the relay too.
  const fresh = new Board(await (await outpost.newDevice()).open({ db: 'tablet', me: 'Tess' }))
  await fresh.expectText(groceriesId, 'title', groceries)
  await fresh.expectStatus(bikeId, 'doing')
})

test('the "Work offline" switch pauses syncing, is remembered across a reload, and "Go online" resumes it', async ({ outpost }) => {
  const device = await outpost.newDevice()
  const other = new Board(await (await outpost.newDevice()).open({ db: 'other', me: 'Quinn' }))
  const board = new Board(await device.open({ db: 'switch', me: 'Sam' }))
  await board.expectConnection('live')

  await board.toggleOffline()
  await board.expectConnection('offline')
  await expect(board.connection).toHaveText('Offline')
  await expect(board.page.getByTestId('offline-toggle')).toHaveText('Go online')
  const id = await board.addTask(outpost.unique('Written with syncing paused'))
  await expect(board.page.getByTestId('status-pending')).toContainText('not yet on the relay')
  await expect(other.task(id)).toHaveCount(0)

  // The choice belongs to the device: reloading its only tab does not reconnect or push anything.
  await board.page.reload()
  await expect(board.task(id)).toBeVisible()
  await board.expectConnection('offline')
  await expect(board.page.getByTestId('offline-toggle')).toHaveText('Go online')
  expect(await board.pendingCount()).toBeGreaterThan(0)
  await board.page.waitForTimeout(1_000)
  await board.expectConnection('offline')
  await expect(other.task(id)).toHaveCount(0)

  await board.toggleOffline()
  await board.expectConnection('live')
  await board.expectAllSynced()
  await expect(board.page.getByTestId('status-pending')).toHaveText('Nothing waiting to sync')
  await expect(other.task(id)).toBeVisible()

  // Turned off, it stays off after a reload too.
  await board.page.reload()
  await board.expectConnection('live')
})

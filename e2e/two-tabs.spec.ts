/**
 * Scenario 1: two tabs of one browser share one engine (one SharedWorker). An edit in one
 * tab shows in the other, and the relay sees exactly one connection for both.
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

test('two tabs share one worker and one relay connection', async ({ outpost }) => {
  // Earlier scenarios' devices are closed; wait until the relay has let go of them.
  await expect.poll(() => outpost.metric('outpost_connections'), { timeout: 15_000 }).toBe(0)

  const device = await outpost.newDevice()
  const db = outpost.unique('tabs')
  const first = new Board(await device.open({ db, me: 'Ada' }))
  const second = new Board(await device.open({ db, me: 'Ada' }))
  await expect(first.mode).toHaveAttribute('data-mode', 'shared-worker')
  await expect(second.mode).toHaveAttribute('data-mode', 'shared-worker')
  await first.expectConnection('live')
  await second.expectConnection('live')

  const title = outpost.unique('Water the plants')
  const id = await first.addTask(title)
  await expect(second.task(id)).toBeVisible()
  await second.expectText(id, 'title', title)

  // And back: a field edited in the second tab reaches the first.
  await second.editText(id, 'notes', 'Only the ferns, the cactus is fine')
  await first.expectText(id, 'notes', 'Only the ferns, the cactus is fine')
  await first.setStatus(id, 'doing')
  await second.expectStatus(id, 'doing')
  await first.expectAllSynced()

  // One worker, so one socket, however many tabs; still one after the traffic above.
  expect(await outpost.metric('outpost_connections')).toBe(1)
  await outpost.screenshot(second.page, 'two-tabs')
})

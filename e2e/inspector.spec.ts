/**
 * The inspector: a developer opens the panel from the demo's "Inspector" button and sees
 * what the engine hides — the connection's state with its transitions, the shape with its
 * cursor and Merkle root, the tasks map and its record count, the runtime mode. With the
 * device off the network a new task waits in the panel's outbox; back online, it leaves the
 * outbox once the relay persisted it. Opening and closing the panel changes nothing the
 * app shows.
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

test('the inspector panel shows the connection, shapes and maps, and a write in the outbox until the relay persisted it', async ({ outpost }) => {
  const device = await outpost.newDevice()
  const board = new Board(await device.open({ db: outpost.unique('inspector'), me: 'Ines' }))
  await board.expectConnection('live')
  const page = board.page
  const panel = page.getByTestId('outpost-inspector')
  const toggle = page.getByTestId('inspector-toggle')

  await expect(panel).toBeHidden()
  await toggle.click()
  await expect(panel).toBeVisible()
  await expect(toggle).toHaveAttribute('aria-pressed', 'true')

  // The connection's state machine, the runtime, the replicated shape and the map.
  await expect(panel.getByTestId('inspector-connection-state')).toHaveAttribute('data-state', 'live')
  await expect(panel.getByTestId('inspector-transitions').locator('li').first()).toHaveAttribute('data-to', 'live')
  await expect(panel.getByTestId('inspector-mode')).toHaveText('shared-worker')
  await expect(panel.getByTestId('inspector-storage')).toContainText('indexeddb (durable)')
  const shape = panel.locator('[data-testid="inspector-shape-row"][data-map="tasks"]')
  await expect(shape).toHaveAttribute('data-sync', 'synced')
  await expect(shape.locator('code').first()).toHaveText(/^[0-9a-f]{16}$/)
  await expect(panel.getByTestId('inspector-outbox-table-empty')).toBeVisible()

  // Off the network: the new task waits in the outbox, shown with what it writes.
  await device.setOffline(true)
  await expect(panel.getByTestId('inspector-connection-state')).not.toHaveAttribute('data-state', 'live')
  const title = outpost.unique('Inspect me')
  const id = await board.addTask(title)
  const row = panel.locator(`[data-testid="inspector-outbox-row"][data-key="${id}"]`)
  await expect(row).toBeVisible()
  await expect(row).toContainText('tasks')
  await expect(row).toContainText(title)
  await expect(row).toContainText('queued')
  await expect(panel.locator('[data-testid="inspector-map-row"][data-map="tasks"] [data-testid="inspector-map-records"]')).toHaveText(/^[1-9]\d*$/)
  await outpost.screenshot(page, 'inspector-outbox')

  // Back online: the relay persists it and it leaves the outbox.
  await device.setOffline(false)
  await board.expectConnection('live')
  await expect(row).toHaveCount(0)
  await expect(panel.getByTestId('inspector-outbox-table-empty')).toBeVisible()
  await board.expectAllSynced()
  await expect(panel.getByTestId('inspector-transitions').locator('li').first()).toHaveAttribute('data-to', 'live')

  // Closing it from its own button keeps the demo's toggle in step; the board is untouched.
  await panel.getByTestId('inspector-close').click()
  await expect(panel).toBeHidden()
  await expect(toggle).toHaveAttribute('aria-pressed', 'false')
  await expect(board.task(id)).toBeVisible()
})

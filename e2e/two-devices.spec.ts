/**
 * Scenario 3: two devices edit the same task while both are offline. Edits to different
 * fields both survive (each field is its own register); the same field edited on both
 * resolves to one value, the same on every device (last writer wins).
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

test('concurrent offline edits merge per field and converge', async ({ outpost }) => {
  // Three devices each start a browser context, a SharedWorker and IndexedDB from cold.
  test.slow()
  const deviceA = await outpost.newDevice()
  const deviceB = await outpost.newDevice()
  const a = new Board(await deviceA.open({ db: 'device-a', me: 'Ann' }))
  const b = new Board(await deviceB.open({ db: 'device-b', me: 'Ben' }))
  await a.expectConnection('live')
  await b.expectConnection('live')

  const title = outpost.unique('Plan the offsite')
  const id = await a.addTask(title)
  await b.expectText(id, 'title', title)

  await deviceA.setOffline(true)
  await deviceB.setOffline(true)
  await expect(a.connection).not.toHaveAttribute('data-state', 'live')
  await expect(b.connection).not.toHaveAttribute('data-state', 'live')

  // Different fields: Ann renames the task, Ben writes notes.
  await a.editText(id, 'title', `${title}, in Lisbon`)
  await b.editText(id, 'notes', 'Book the venue before Friday')
  // The same field on both: Ann says "In progress", then Ben says "Done".
  await a.setStatus(id, 'doing')
  await a.expectStatus(id, 'doing')
  await b.setStatus(id, 'done')
  await b.expectStatus(id, 'done')
  // Each device sees only its own edits while apart.
  await a.expectText(id, 'notes', '')
  await b.expectText(id, 'title', title)

  await deviceA.setOffline(false)
  await deviceB.setOffline(false)
  for (const board of [a, b]) {
    await board.expectConnection('live')
    await board.expectAllSynced()
  }

  for (const board of [a, b]) {
    // Both different-field edits survive on both devices ...
    await board.expectText(id, 'title', `${title}, in Lisbon`)
    await board.expectText(id, 'notes', 'Book the venue before Friday')
    // ... and the contested field resolves the same way everywhere: the later edit wins.
    await board.expectStatus(id, 'done')
  }
  await outpost.screenshot(a.page, 'two-devices')

  // A third device, fresh from the relay, agrees.
  const c = new Board(await (await outpost.newDevice()).open({ db: 'device-c', me: 'Cy' }))
  await c.expectConnection('live')
  await c.expectText(id, 'title', `${title}, in Lisbon`)
  await c.expectText(id, 'notes', 'Book the venue before Friday')
  await c.expectStatus(id, 'done')
})

/**
 * Scenario 4: shapes. A device in "My tasks" replicates only the shape of tasks assigned
 * to its person: its IndexedDB holds those and nothing else. Assigning a task to that
 * person moves it in; reassigning it to someone else moves it out (dropped locally, not
 * deleted for anyone).
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'
import { storedRecordKeys } from './support/local-data'

test('"My tasks" holds only my tasks, with move-in and move-out', async ({ outpost }) => {
  const mia = outpost.unique('Mia')
  const bob = outpost.unique('Bob')

  const office = await outpost.newDevice()
  const lead = new Board(await office.open({ db: 'office', me: 'Lena', view: 'all' }))
  await lead.expectConnection('live')
  // Others' tasks exist too: the lead's own, and one for Bob.
  await lead.addTask(outpost.unique('Review the budget'))
  const forMia = await lead.addTask(outpost.unique('Draft the newsletter'))
  const forBob = await lead.addTask(outpost.unique('Call the printer'))
  await lead.editText(forMia, 'assignee', mia)
  await lead.editText(forBob, 'assignee', bob)
  await lead.expectAllSynced()
  const everything = await lead.items.count()
  expect(everything).toBeGreaterThanOrEqual(3)

  const phoneDevice = await outpost.newDevice()
  const phone = new Board(await phoneDevice.open({ db: 'mia-phone', me: mia, view: 'mine' }))
  await phone.expectConnection('live')
  await expect(phone.page.getByTestId('view-note')).toHaveAttribute('data-replication', 'mine')
  await expect(phone.items).toHaveCount(1)
  await expect(phone.task(forMia)).toBeVisible()
  // Not just hidden: the device stores only that one task of the board's many.
  await expect.poll(() => storedRecordKeys(phone.page, 'mia-phone', 'tasks')).toEqual([forMia])

  // Move-in: the lead hands Bob's task to Mia.
  await lead.editText(forBob, 'assignee', mia)
  await expect(phone.task(forBob)).toBeVisible()
  await phone.expectText(forBob, 'assignee', mia)
  await expect.poll(() => storedRecordKeys(phone.page, 'mia-phone', 'tasks')).toEqual([forMia, forBob].sort())

  // Move-out: the lead gives Mia's first task to Bob.
  await lead.editText(forMia, 'assignee', bob)
  await expect(phone.task(forMia)).toHaveCount(0)
  await expect(phone.items).toHaveCount(1)
  await expect.poll(() => storedRecordKeys(phone.page, 'mia-phone', 'tasks')).toEqual([forBob])
  await outpost.screenshot(phone.page, 'shapes')

  // Dropped on Mia's phone only: the task still exists for everyone else.
  await lead.expectText(forMia, 'assignee', bob)
  await expect(lead.items).toHaveCount(everything)
  expect(await lead.pendingCount()).toBe(0)
})

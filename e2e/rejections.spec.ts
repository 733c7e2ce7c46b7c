/**
 * Scenario 8: a change the relay refuses for good is shown to the person and undone.
 * The suite's relay refuses task titles containing a word (support/relay-config.ts, a
 * real rule: FORBIDDEN from the `tasks` row filter). Renaming a task to such a title is
 * saved on the device at once, refused by the relay, taken back by the SDK, and the board
 * says so in a notice that can be dismissed; the task shows the relay's title again, and
 * nothing is left waiting to sync. A dismissed notice stays dismissed after a reload.
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'
import { REFUSED_TITLE_WORD } from './support/relay-config'

test('a write the relay refuses is reported in a dismissible notice and undone', async ({ outpost }) => {
  const laptop = await outpost.newDevice()
  const board = new Board(await laptop.open({ db: 'refused', me: 'Kim' }))
  await board.expectConnection('live')
  const title = outpost.unique('Quarterly plan')
  const id = await board.addTask(title)
  await board.expectAllSynced()
  // The other device will show the refused title if it ever reaches the relay.
  const other = new Board(await (await outpost.newDevice()).open({ db: 'refused-other', me: 'Lou' }))
  await other.expectText(id, 'title', title)
  const notice = board.page.getByTestId('rejection-notice')
  await expect(notice).toHaveCount(0)

  await board.editText(id, 'title', `${title} ${REFUSED_TITLE_WORD}`)

  // The relay's refusal arrives: the notice names the task (by the title it has again) and the reason in plain words.
  await expect(notice).toBeVisible()
  await expect(notice).toHaveAttribute('data-code', 'FORBIDDEN')
  await expect(board.page.getByTestId('rejection-text')).toHaveText(`Your change to “${title}” was not saved: the server’s rules do not allow it. It was undone on this device.`)
  await expect(board.page.getByTestId('rejection-text')).toHaveAttribute('title', /^FORBIDDEN: .*row filter/)
  // The record shows the relay's version again, here and on the other device, and nothing waits to sync.
  await board.expectText(id, 'title', title)
  await board.expectAllSynced()
  await other.expectText(id, 'title', title)
  await outpost.screenshot(board.page, 'rejections')

  // Dismissed, it stays dismissed (also after a reload); a new refusal shows a new notice.
  await board.page.getByTestId('rejection-dismiss').click()
  await expect(notice).toHaveCount(0)
  await board.page.reload()
  await board.expectConnection('live')
  await board.expectText(id, 'title', title)
  await expect(notice).toHaveCount(0)
  await board.editText(id, 'notes', `${REFUSED_TITLE_WORD} is fine in notes`)
  await board.editText(id, 'title', `${REFUSED_TITLE_WORD}: ${title}`)
  await expect(notice).toHaveAttribute('data-unseen', '1')
  await board.expectText(id, 'title', title)
  await board.expectText(id, 'notes', `${REFUSED_TITLE_WORD} is fine in notes`)
  await other.expectText(id, 'notes', `${REFUSED_TITLE_WORD} is fine in notes`)
  await other.expectText(id, 'title', title)
})

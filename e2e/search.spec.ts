/**
 * Search: a person types into the search box and sees the matching tasks ranked by
 * relevance (titles and notes); the hits follow a task written on another device, then,
 * with the device off the network, a task written and a note edited here. The index lives
 * in the engine on the device, so none of this needs the relay.
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

test('search ranks tasks by title and notes, live from another device and offline', async ({ outpost }) => {
  const laptop = await outpost.newDevice()
  const phone = await outpost.newDevice()
  const board = new Board(await laptop.open({ db: 'search-laptop', me: 'Sol' }))
  const other = new Board(await phone.open({ db: 'search-phone', me: 'Pia' }))
  await board.expectConnection('live')
  await other.expectConnection('live')
  await board.page.evaluate(async () => {
    await navigator.serviceWorker.ready
  })
  // One made-up word per run, so tasks of other scenarios on the shared relay never match.
  const word = outpost.unique('zq').replace(' ', '')

  const strong = await board.addTask(`${word} run`)
  await board.editText(strong, 'notes', `${word}, ${word} powder`)
  const weak = await board.addTask('Call the plumber')
  await board.editText(weak, 'notes', `ask about the ${word} delivery schedule for next week`)
  await board.addTask('Paint the fence')

  await board.page.getByTestId('search-input').fill(word)
  const hits = board.page.getByTestId('search-hit')
  const hit = (id: string) => board.page.locator(`[data-testid="search-hit"][data-key="${id}"]`)
  // Ranked: three mentions in a short task above one mention in long notes.
  await expect(hits).toHaveCount(2)
  await expect(hits.nth(0)).toHaveAttribute('data-key', strong)
  await expect(hits.nth(1)).toHaveAttribute('data-key', weak)

  // Live: a task written on another device joins the hits when it arrives.
  const remote = await other.addTask(`${word} the goats`)
  await expect(hit(remote)).toHaveCount(1)
  await expect(hits).toHaveCount(3)

  // Offline: writes here still update the hits.
  await laptop.setOffline(true)
  await expect(board.connection).not.toHaveAttribute('data-state', 'live')
  const offline = await board.addTask(`Oat ${word} latte`)
  await expect(hit(offline)).toHaveCount(1)
  await board.editText(weak, 'notes', 'ask about the delivery schedule')
  await expect(hit(weak)).toHaveCount(0)
  await expect(hits).toHaveCount(3)
  await outpost.screenshot(board.page, 'search-offline')

  // A word nobody wrote: no hits, said plainly.
  await board.page.getByTestId('search-input').fill(`${word}xyzzy`)
  await expect(board.page.getByTestId('search-empty')).toBeVisible()
})

/**
 * Scenario 7: coordination primitives across two devices.
 * - Counters: likes given on two devices, online and offline, add up to the same total
 *   everywhere, and a reconnect (which replays the outbox) never counts a like twice.
 * - Locks: editing a task takes its lock on the relay; the holder sees its fencing token,
 *   the other device sees who is editing and cannot take it; the next holder's token is
 *   greater.
 * - Presence: each device's header shows who is viewing the board, live.
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

async function likeTimes(board: Board, id: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) await board.like(id)
}

function likeCount(board: Board, id: string) {
  return board.task(id).getByTestId('task-like-count')
}

test('likes (a CRDT counter) add up across devices, online and offline', async ({ outpost }) => {
  const deviceA = await outpost.newDevice()
  const deviceB = await outpost.newDevice()
  const a = new Board(await deviceA.open({ db: 'likes-a', me: 'Kim' }))
  const b = new Board(await deviceB.open({ db: 'likes-b', me: 'Lou' }))
  await a.expectConnection('live')
  await b.expectConnection('live')
  const id = await a.addTask(outpost.unique('Team lunch on Friday'))
  await expect(likeCount(b, id)).toHaveText('0')

  // Online: each click shows at once where it was made and soon on the other device.
  await likeTimes(a, id, 2)
  await expect(likeCount(a, id)).toHaveText('2')
  await likeTimes(b, id, 1)
  await expect(likeCount(b, id)).toHaveText(/^[13]$/)
  await expect(likeCount(a, id)).toHaveText('3')
  await expect(likeCount(b, id)).toHaveText('3')

  // Offline on both: likes keep counting locally.
  await deviceA.setOffline(true)
  await deviceB.setOffline(true)
  await expect(a.connection).not.toHaveAttribute('data-state', 'live')
  await expect(b.connection).not.toHaveAttribute('data-state', 'live')
  await likeTimes(a, id, 1)
  await likeTimes(b, id, 2)
  await expect(likeCount(a, id)).toHaveText('4')
  await expect(likeCount(b, id)).toHaveText('5')

  // Back online: 3 + 1 + 2, once each, on both devices.
  await deviceA.setOffline(false)
  await deviceB.setOffline(false)
  for (const board of [a, b]) {
    await board.expectConnection('live')
    await board.expectAllSynced()
    await expect(likeCount(board, id)).toHaveText('6')
  }
  await outpost.screenshot(b.page, 'primitives')

  // The relay's total agrees, and a reload (outbox already acknowledged) adds nothing.
  const fresh = new Board(await (await outpost.newDevice()).open({ db: 'likes-c', me: 'Max' }))
  await expect(likeCount(fresh, id)).toHaveText('6')
  await a.page.reload()
  await a.expectConnection('live')
  await expect(likeCount(a, id)).toHaveText('6')
  await expect(likeCount(fresh, id)).toHaveText('6')
})

/** The fencing token shown on a task this tab is editing (the badge reads "token #N"). */
async function lockToken(board: Board, id: string): Promise<number> {
  const text = await board.task(id).getByTestId('lock-token').textContent()
  const token = Number((text ?? '').replace('#', ''))
  if (!Number.isInteger(token) || token <= 0) throw new Error(`the lock badge shows "${String(text)}", not a fencing token`)
  return token
}

test('an editing lock shows its fencing token here and the editor elsewhere', async ({ outpost }) => {
  const ann = outpost.unique('Ann')
  const bo = outpost.unique('Bo')
  const a = new Board(await (await outpost.newDevice()).open({ db: 'lock-a', me: ann }))
  const b = new Board(await (await outpost.newDevice()).open({ db: 'lock-b', me: bo }))
  await a.expectConnection('live')
  await b.expectConnection('live')
  const id = await a.addTask(outpost.unique('Rewrite the onboarding doc'))
  await expect(b.task(id)).toBeVisible()

  // Ann starts editing the title: she holds the lock and sees its token ...
  await a.task(id).getByTestId('task-title').click()
  const mine = a.task(id).getByTestId('lock-badge')
  await expect(mine).toHaveAttribute('data-holder', 'me')
  await expect(a.task(id).getByTestId('lock-token')).toHaveText(/^#\d+$/)
  const first = await lockToken(a, id)
  // ... and Bo's device says she is editing.
  const theirs = b.task(id).getByTestId('lock-badge')
  await expect(theirs).toHaveAttribute('data-holder', ann)
  await expect(theirs).toContainText(ann)

  // Bo clicks in too: the lock is Ann's, so he does not get it (his edits still merge).
  await b.task(id).getByTestId('task-notes').click()
  await expect(theirs).toHaveAttribute('data-holder', ann)
  await expect(b.task(id).getByTestId('lock-token')).toHaveCount(0)
  await outpost.screenshot(b.page, 'primitives-lock')
  await b.task(id).getByTestId('task-notes').blur()

  // Ann leaves the field: the lock is released and the badge goes away everywhere.
  await a.task(id).getByTestId('task-title').blur()
  await expect(a.task(id).getByTestId('lock-badge')).toHaveCount(0)
  await expect(b.task(id).getByTestId('lock-badge')).toHaveCount(0)

  // Bo takes it now, with a greater fencing token; Ann sees him editing.
  await b.task(id).getByTestId('task-notes').click()
  await expect(b.task(id).getByTestId('lock-badge')).toHaveAttribute('data-holder', 'me')
  expect(await lockToken(b, id)).toBeGreaterThan(first)
  await expect(a.task(id).getByTestId('lock-badge')).toHaveAttribute('data-holder', bo)
  await b.task(id).getByTestId('task-notes').blur()
  await expect(a.task(id).getByTestId('lock-badge')).toHaveCount(0)
})

test('presence shows who is viewing the board, live', async ({ outpost }) => {
  const ida = outpost.unique('Ida')
  const jo = outpost.unique('Jo')
  const laptop = await outpost.newDevice()
  const a = new Board(await laptop.open({ db: 'presence-a', me: ida }))
  await a.expectConnection('live')
  const member = (board: Board, name: string) => board.page.locator(`[data-testid="presence-member"][data-name="${name}"]`)
  await expect(member(a, ida)).toHaveAttribute('data-self', 'true')

  // Jo opens the board on another device: both headers show both people.
  const phone = new Board(await (await outpost.newDevice()).open({ db: 'presence-b', me: jo }))
  await phone.expectConnection('live')
  await expect(member(a, jo)).toHaveAttribute('data-self', 'false')
  await expect(member(phone, ida)).toHaveAttribute('data-self', 'false')
  await expect(member(phone, jo)).toHaveAttribute('data-self', 'true')

  // A second tab of Ida's is still one person, with two tabs.
  const second = new Board(await laptop.open({ db: 'presence-a', me: ida }))
  await expect(member(phone, ida)).toHaveAttribute('data-tabs', '2')
  await outpost.screenshot(phone.page, 'primitives-presence')
  await second.page.close()
  await expect(member(phone, ida)).toHaveAttribute('data-tabs', '1', { timeout: 30_000 })

  // Jo leaves: Ida's header drops him.
  await phone.page.close()
  await expect(member(a, jo)).toHaveCount(0, { timeout: 30_000 })
  await expect(member(a, ida)).toHaveCount(1)
})

/**
 * Scenario 7: coordination primitives across two devices.
 * - Likes: one per person. A click likes, the next click takes it back; two people count
 *   two; the same person liking on two devices while offline counts once (the likers of a
 *   task are an add-wins set of names, so the merge keeps each name once).
 * - Locks: editing a task takes its lock on the relay; the holder's card says so and the
 *   "How this works" panel shows the lock's fencing token, the other device sees who is
 *   editing and cannot take it; the next holder's token is greater. The badge never moves
 *   the card: its box is the same with and without it.
 * - Presence: each device's header shows who is viewing the board, live.
 */
import type { Locator } from '@playwright/test'
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

function likeButton(board: Board, id: string): Locator {
  return board.task(id).getByTestId('task-like')
}

function likeCount(board: Board, id: string): Locator {
  return board.task(id).getByTestId('task-like-count')
}

async function expectLikes(board: Board, id: string, count: number, likedByMe: boolean): Promise<void> {
  await expect(likeCount(board, id)).toHaveText(String(count))
  await expect(likeButton(board, id)).toHaveAttribute('aria-pressed', String(likedByMe))
}

test('a like is one per person: a toggle, counted in people across devices, online and offline', async ({ outpost }) => {
  const laptop = await outpost.newDevice()
  const a = new Board(await laptop.open({ db: 'likes-a', me: 'Kim' }))
  const b = new Board(await (await outpost.newDevice()).open({ db: 'likes-b', me: 'Lou' }))
  await a.expectConnection('live')
  await b.expectConnection('live')
  const id = await a.addTask(outpost.unique('Team lunch on Friday'))
  await expectLikes(b, id, 0, false)

  // Two clicks by one person: liked, then taken back, here and on the other device.
  await a.like(id)
  await expectLikes(a, id, 1, true)
  await expectLikes(b, id, 1, false)
  await a.like(id)
  await expectLikes(a, id, 0, false)
  await expectLikes(b, id, 0, false)

  // Two people count two.
  await a.like(id)
  await b.like(id)
  await expectLikes(a, id, 2, true)
  await expectLikes(b, id, 2, true)
  await expect(likeButton(a, id)).toHaveAttribute('title', /^Liked by (Kim and Lou|Lou and Kim)$/)

  // Kim's phone knows the like is hers, and takes it back there.
  const phone = await outpost.newDevice()
  const c = new Board(await phone.open({ db: 'likes-c', me: 'Kim' }))
  await c.expectConnection('live')
  await expectLikes(c, id, 2, true)
  await c.like(id)
  await expectLikes(c, id, 1, false)
  await expectLikes(a, id, 1, false)

  // Offline on both of Kim's devices, she likes the task on each: each shows her like ...
  await laptop.setOffline(true)
  await phone.setOffline(true)
  await expect(a.connection).not.toHaveAttribute('data-state', 'live')
  await expect(c.connection).not.toHaveAttribute('data-state', 'live')
  await a.like(id)
  await c.like(id)
  await expectLikes(a, id, 2, true)
  await expectLikes(c, id, 2, true)

  // ... and back online she still counts once: Kim and Lou, two people, everywhere.
  await laptop.setOffline(false)
  await phone.setOffline(false)
  for (const board of [a, c]) {
    await board.expectConnection('live')
    await board.expectAllSynced()
  }
  await expectLikes(a, id, 2, true)
  await expectLikes(b, id, 2, true)
  await expectLikes(c, id, 2, true)
  await outpost.screenshot(b.page, 'primitives')

  // A reload (everything already acknowledged) adds nothing.
  await a.page.reload()
  await a.expectConnection('live')
  await expectLikes(a, id, 2, true)
})

/** The fencing token of the lock this tab holds on a task (the badge carries it; the "How this works" panel shows it). */
async function lockToken(board: Board, id: string): Promise<number> {
  const raw = await board.task(id).getByTestId('lock-badge').getAttribute('data-token')
  const token = Number(raw)
  if (!Number.isInteger(token) || token <= 0) throw new Error(`the lock badge carries data-token="${String(raw)}", not a fencing token`)
  return token
}

/** The card's box, rounded to whole pixels (sub-pixel noise is not a layout shift). */
async function box(card: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  const found = await card.boundingBox()
  if (found === null) throw new Error('the task card is not visible')
  return { x: Math.round(found.x), y: Math.round(found.y), width: Math.round(found.width), height: Math.round(found.height) }
}

test('an editing lock shows who is editing without moving the card, and its fencing token in "How this works"', async ({ outpost }) => {
  const ann = outpost.unique('Ann')
  const bo = outpost.unique('Bo')
  const a = new Board(await (await outpost.newDevice()).open({ db: 'lock-a', me: ann }))
  const b = new Board(await (await outpost.newDevice()).open({ db: 'lock-b', me: bo }))
  await a.expectConnection('live')
  await b.expectConnection('live')
  const id = await a.addTask(outpost.unique('Rewrite the onboarding doc'))
  await expect(b.task(id)).toBeVisible()
  const beforeA = await box(a.task(id))
  const beforeB = await box(b.task(id))
  const titleBefore = await box(a.task(id).getByTestId('task-title'))

  // Ann starts editing the title: she holds the lock, her card says so in words ...
  await a.task(id).getByTestId('task-title').click()
  const mine = a.task(id).getByTestId('lock-badge')
  await expect(mine).toHaveAttribute('data-holder', 'me')
  await expect(mine).toHaveText('You are editing')
  const first = await lockToken(a, id)
  // ... and the badge took no room: the card and its title did not move.
  expect(await box(a.task(id))).toEqual(beforeA)
  expect(await box(a.task(id).getByTestId('task-title'))).toEqual(titleBefore)
  // Bo's device says she is editing, in the same reserved space.
  const theirs = b.task(id).getByTestId('lock-badge')
  await expect(theirs).toHaveAttribute('data-holder', ann)
  await expect(theirs).toContainText(ann)
  expect(await box(b.task(id))).toEqual(beforeB)
  // No developer terms on the board itself.
  await expect(a.page.getByTestId('task-list')).not.toContainText(/token|shape|replicat/i)

  // Bo clicks in too: the lock is Ann's, so he does not get it (his edits still merge).
  await b.task(id).getByTestId('task-notes').click()
  await expect(theirs).toHaveAttribute('data-holder', ann)
  await outpost.screenshot(b.page, 'primitives-lock')
  await b.task(id).getByTestId('task-notes').blur()

  // Ann leaves the field: the lock is released, the badge goes away everywhere, nothing moves back.
  await a.task(id).getByTestId('task-title').blur()
  await expect(a.task(id).getByTestId('lock-badge')).toHaveCount(0)
  await expect(b.task(id).getByTestId('lock-badge')).toHaveCount(0)
  expect(await box(a.task(id))).toEqual(beforeA)

  // Bo opens "How this works" and takes the lock: the panel names the task and its token, greater than Ann's.
  await b.page.getByTestId('how-it-works-toggle').click()
  const how = b.page.getByTestId('how-it-works')
  await expect(how.getByTestId('how-lock')).toHaveText('This tab holds no lock right now.')
  await expect(how.getByTestId('how-replication')).toContainText('copies every task')
  await b.task(id).getByTestId('task-notes').click()
  await expect(b.task(id).getByTestId('lock-badge')).toHaveAttribute('data-holder', 'me')
  const second = await lockToken(b, id)
  expect(second).toBeGreaterThan(first)
  await expect(how.getByTestId('how-lock')).toHaveAttribute('data-token', String(second))
  await expect(how.getByTestId('how-lock')).toContainText(`fencing token #${second}`)
  await outpost.screenshot(b.page, 'primitives-how-it-works')
  await expect(a.task(id).getByTestId('lock-badge')).toHaveAttribute('data-holder', bo)
  await b.task(id).getByTestId('task-notes').blur()
  await expect(a.task(id).getByTestId('lock-badge')).toHaveCount(0)
  await b.page.getByTestId('how-it-works-close').click()
  await expect(how).toHaveCount(0)
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

/**
 * Scenario 5: the relay is SIGKILLed during use (no drain, as if its machine lost power)
 * and started again on the same port and data dir. Clients show they lost it, keep
 * working, reconnect on their own, resync, and nothing the relay acknowledged is lost.
 */
import { Board } from './support/board'
import { expect, test } from './support/fixtures'

test('relay killed and restarted: clients reconnect and no acknowledged edit is lost', async ({ outpost }) => {
  const writerDevice = await outpost.newDevice()
  const peerDevice = await outpost.newDevice()
  const writer = new Board(await writerDevice.open({ db: 'writer', me: 'Wes' }))
  const peer = new Board(await peerDevice.open({ db: 'peer', me: 'Pia' }))
  await writer.expectConnection('live')
  await peer.expectConnection('live')

  const titles = [outpost.unique('Ship release'), outpost.unique('Write changelog'), outpost.unique('Tag the commit')]
  const ids: string[] = []
  for (const title of titles) ids.push(await writer.addTask(title))
  const [first, second, third] = ids as [string, string, string]
  await writer.editText(first, 'notes', 'Green build first')
  await writer.setStatus(second, 'doing')
  // The status bar says the relay has all of it: acknowledged, so persisted.
  await writer.expectAllSynced()
  await peer.expectText(first, 'notes', 'Green build first')

  await outpost.killRelay()
  // The writer stays away until we have checked what the relay kept on its own (it would
  // otherwise re-push anything the relay lost). The peer reconnects by itself.
  await writerDevice.setOffline(true)
  for (const board of [writer, peer]) {
    await expect(board.connection).not.toHaveAttribute('data-state', 'live')
    await expect(board.connection).toHaveAttribute('data-online', 'false')
  }

  // Work goes on during the outage.
  await peer.editText(first, 'notes', 'Green build first, then tag')
  const outage = await writer.addTask(outpost.unique('Written while the relay was down'))
  await expect.poll(() => peer.pendingCount()).toBeGreaterThan(0)
  await expect.poll(() => writer.pendingCount()).toBeGreaterThan(0)
  await outpost.screenshot(peer.page, 'relay-restart-down')

  await outpost.startRelay()
  // Reconnects through its own backoff, then resyncs what it wrote meanwhile.
  await peer.expectConnection('live', 45_000)
  await peer.expectAllSynced()

  // A device that never saw any of this gets everything the relay acknowledged.
  const fresh = new Board(await (await outpost.newDevice()).open({ db: 'fresh', me: 'Fay' }))
  await fresh.expectConnection('live')
  for (const [index, id] of ids.entries()) await fresh.expectText(id, 'title', titles[index] ?? '')
  await fresh.expectStatus(second, 'doing')
  await fresh.expectStatus(third, 'todo')
  await fresh.expectText(first, 'notes', 'Green build first, then tag')
  await expect(fresh.task(outage)).toHaveCount(0)

  // The writer comes back: its outage write reaches everyone, and it gets the peer's.
  await writerDevice.setOffline(false)
  await writer.expectConnection('live')
  await writer.expectAllSynced()
  await writer.expectText(first, 'notes', 'Green build first, then tag')
  await expect(fresh.task(outage)).toBeVisible()
  await expect(peer.task(outage)).toBeVisible()
  await outpost.screenshot(writer.page, 'relay-restart')
})

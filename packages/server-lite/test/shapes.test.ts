/**
 * Shapes over a real relay: `where` with live move-in and move-out, `fields` projection
 * (records and digests cover only projected fields), and `limit` windows where a record
 * entering pushes the last one out and a record leaving lets the next one in.
 */
import type { ChangesMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { remove, update } from './helpers/changes'
import { LocalShape } from './helpers/replica'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function setup() {
  const started = await startRelay()
  cleanups.push(started.stop)
  const { client: writer } = await TestClient.connect(started.relay.url)
  const { client: reader } = await TestClient.connect(started.relay.url)
  cleanups.push(() => writer.close(), () => reader.close())
  return { writer, reader }
}

/** The next `changes` message for `sub`, applied to `local`. */
async function nextChanges(client: TestClient, local: LocalShape): Promise<ChangesMessage> {
  const message = await client.next<ChangesMessage>((m) => m.type === 'changes' && m.sub === local.sub)
  local.absorb(message)
  return message
}

describe('shapes', () => {
  it('moves records in and out of a where-filtered shape as they start and stop matching', async () => {
    const { writer, reader } = await setup()
    await writer.ops([update(writer.clock, 'todos', 'a', { status: 'open', title: 'A' }), update(writer.clock, 'todos', 'b', { status: 'done', title: 'B' })])
    const local = new LocalShape({ map: 'todos', where: { eq: ['status', 'open'] } })
    await local.sync(reader)
    expect([...local.states.keys()]).toEqual(['a'])
    reader.skipAll()

    await writer.ops([update(writer.clock, 'todos', 'a', { status: 'done' })])
    const out = await nextChanges(reader, local)
    expect(out.moveOut).toEqual(['a'])
    expect(out.changes).toEqual([])

    await writer.ops([update(writer.clock, 'todos', 'b', { status: 'open' })])
    const moveIn = await nextChanges(reader, local)
    expect(moveIn.changes.map((c) => c.key)).toEqual(['b'])
    expect(local.view('b')).toEqual({ status: 'open', title: 'B' })
    expect(local.states.has('a')).toBe(false)

    // A record that never matched produces nothing: the next message is about the one that does.
    await writer.ops([update(writer.clock, 'todos', 'c', { status: 'done' })])
    await writer.ops([update(writer.clock, 'todos', 'd', { status: 'open' })])
    const next = await nextChanges(reader, local)
    expect(next.changes.map((c) => c.key)).toEqual(['d'])
    expect(next.moveOut ?? []).toEqual([])
  })

  it('tells a writer whose write lost that the record is not in its shape (found by reliability N1)', async () => {
    const { writer, reader } = await setup()
    const local = new LocalShape({ map: 'todos', where: { eq: ['status', 'open'] } })
    await local.sync(reader)
    reader.skipAll()
    // The reader's write is stamped first but arrives after a newer one that took the record elsewhere.
    const losing = update(reader.clock, 'todos', 'a', { status: 'open' })
    await new Promise((resolve) => setTimeout(resolve, 5))
    await writer.ops([update(writer.clock, 'todos', 'a', { status: 'done' })])
    await reader.ops([losing])
    const out = await nextChanges(reader, local)
    expect(out.moveOut).toEqual(['a'])
    expect(out.changes).toEqual([])
  })

  it('sends only projected fields, and their digests ignore the rest', async () => {
    const { writer, reader } = await setup()
    await writer.ops([update(writer.clock, 'users', 'u1', { name: 'Ada', email: 'ada@example.com', salary: 1 })])
    const local = new LocalShape({ map: 'users', fields: ['name'] })
    const first = await local.sync(reader)
    expect(first.received).toBe(1)
    expect(local.view('u1')).toEqual({ name: 'Ada' })
    reader.skipAll()
    for (const m of reader.all<ChangesMessage>((m) => m.type === 'changes')) {
      for (const c of m.changes) if (c.kind === 'lww') expect(c.state.fields.map((f) => f[0])).toEqual(['name'])
    }
    // A change to a field outside the projection sends nothing and leaves the shape's root as it was.
    await writer.ops([update(writer.clock, 'users', 'u1', { salary: 2 })])
    await writer.ops([update(writer.clock, 'users', 'u2', { name: 'Grace', salary: 3 })])
    const next = await nextChanges(reader, local)
    expect(next.changes.map((c) => c.key)).toEqual(['u2'])
    const again = await local.sync(reader)
    expect(again.received).toBe(0)
  })

  it('keeps a limit window: entering pushes the last out, leaving lets the next in', async () => {
    const { writer, reader } = await setup()
    await writer.ops([1, 2, 3, 4, 5].map((rank) => update(writer.clock, 'board', `r${rank}`, { rank })))
    const local = new LocalShape({ map: 'board', orderBy: [['rank', 'asc']], limit: 3 })
    await local.sync(reader)
    expect([...local.states.keys()].sort()).toEqual(['r1', 'r2', 'r3'])
    reader.skipAll()

    await writer.ops([update(writer.clock, 'board', 'r0', { rank: 0 })])
    const enter = await nextChanges(reader, local)
    expect(enter.changes.map((c) => c.key)).toEqual(['r0'])
    expect(enter.moveOut).toEqual(['r3'])

    await writer.ops([remove(writer.clock, 'board', 'r1')])
    const leave = await nextChanges(reader, local)
    expect(leave.moveOut).toEqual(['r1'])
    expect(leave.changes.map((c) => c.key)).toEqual(['r3'])
    expect([...local.states.keys()].sort()).toEqual(['r0', 'r2', 'r3'])

    // Reordering inside the window changes a member, not the membership.
    await writer.ops([update(writer.clock, 'board', 'r5', { rank: -1 })])
    const jump = await nextChanges(reader, local)
    expect(jump.changes.map((c) => c.key)).toEqual(['r5'])
    expect(jump.moveOut).toEqual(['r3'])
    // The relay's window and the local one agree exactly.
    const check = await local.sync(reader)
    expect(check.received).toBe(0)
    expect([...local.states.keys()].sort()).toEqual(['r0', 'r2', 'r5'])
  })
})

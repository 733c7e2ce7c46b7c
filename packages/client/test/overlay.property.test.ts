/**
 * Property of the same-tab overlay, over random sequences of this tab's writes, another
 * tab's writes, and deliveries of the worker's held-back emissions and answers (in the
 * order the engine sent them), for random live queries (filters, orders, limit windows):
 *
 *  1. the worker's rows are the truth: once everything is delivered, the tab shows
 *     exactly the rows the engine itself computes for the query — also at every point
 *     in between where nothing is in flight;
 *  2. no flicker: every write carries a rising `rev`, and the `rev` a key shows never goes
 *     back (an older emission never undoes a write the tab already showed);
 *  3. every emission is a valid window: at most `limit` rows, in the query's order.
 *
 * Seeded: prints its seed; replay with OUTPOST_SEED=<seed>.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { compareRows, type Query } from '@outpost/core'
import { prng, testSeed } from '@outpost/core/testing'
import type { Row } from '../src/index'
import { HeldEngine, microtasks } from './held-engine'
import { until } from './helpers'

type Rec = {
  rank: number
  group: number
  rev: number
}

const QUERIES: readonly Query[] = [
  {},
  { orderBy: [['rank', 'asc']] },
  { orderBy: [['rank', 'desc']], limit: 3 },
  { where: { eq: ['group', 1] }, orderBy: [['rank', 'asc']], limit: 2 },
  { where: { gte: ['rank', 5] } },
  { where: { eq: ['group', 0] }, limit: 1 },
  { orderBy: [['group', 'asc'], ['rank', 'desc']], limit: 4 },
]
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5']
const ROUNDS = 24
const STEPS = 50

const engines: HeldEngine[] = []
afterEach(async () => {
  for (const held of engines.splice(0)) await held.close()
})

/** The engine's own answer for the query, asked directly (no overlay, no gate). */
async function truth(held: HeldEngine, query: Query): Promise<readonly Row<Rec>[]> {
  let rows: readonly Row<Rec>[] = []
  const result = await held.engine.subscribeQuery({ map: 'm', ...query }, (next) => (rows = next as unknown as readonly Row<Rec>[]))
  if (!result.ok) throw new Error(result.error.message)
  await held.engine.unsubscribeQuery(result.value)
  return rows
}

describe('same-tab overlay (property)', () => {
  it('ends on the worker’s rows, never flickers back, and shows only valid windows', async () => {
    const seed = testSeed('overlay-property')
    const random = prng(seed)
    const int = (n: number): number => Math.floor(random() * n)
    const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T
    for (let round = 0; round < ROUNDS; round++) {
      const where = `seed ${seed}, round ${round}`
      const held = new HeldEngine()
      engines.push(held)
      const tab = held.tab<Rec>('m')
      const other = held.tab<Rec>('m', false).map
      let rev = 0
      const record = (): Rec => ({ rank: int(10), group: int(2), rev: ++rev })
      for (const key of KEYS) if (random() < 0.6) await other.set(key, record())

      const query = pick(QUERIES)
      const order = compareRows(query.orderBy)
      const shown: (readonly Row<Rec>[])[] = []
      const stop = tab.map.query(query).subscribe((rows) => shown.push(rows))
      await until(() => shown.length > 0, 5000, `the first rows (${where})`)
      held.hold()

      const highest = new Map<string, number>()
      let checked = 0
      const check = (step: number): void => {
        for (; checked < shown.length; checked++) {
          const rows = shown[checked] as readonly Row<Rec>[]
          const at = `${where}, step ${step}, emission ${checked}, query ${JSON.stringify(query)}: ${JSON.stringify(rows)}`
          if (query.limit !== undefined) expect(rows.length, at).toBeLessThanOrEqual(query.limit)
          for (let i = 1; i < rows.length; i++) expect(order(rows[i - 1] as Row<Rec>, rows[i] as Row<Rec>), at).toBeLessThan(0)
          for (const row of rows) {
            expect(row.value.rev, `${row.key} went back (${at})`).toBeGreaterThanOrEqual(highest.get(row.key) ?? 0)
            highest.set(row.key, row.value.rev)
          }
        }
      }

      const writes: Promise<unknown>[] = []
      for (let step = 0; step < STEPS; step++) {
        const roll = random()
        const key = pick(KEYS)
        if (roll < 0.45) {
          const kind = random()
          const patch = random() < 0.5 ? { rank: int(10), rev: ++rev } : { group: int(2), rev: ++rev }
          const handle = kind < 0.45 ? tab.map.set(key, record()) : kind < 0.8 ? tab.map.update(key, patch) : tab.map.delete(key)
          writes.push(handle.local.catch((error: unknown) => error))
        } else if (roll < 0.55) {
          const kind = random()
          await (kind < 0.5 ? other.set(key, record()) : kind < 0.8 ? other.update(key, { rank: int(10), rev: ++rev }) : other.delete(key))
        } else if (roll < 0.9) {
          held.release(1 + int(4))
        } else {
          // Let the engine commit and answer what it has (the answers stay held).
          await new Promise((resolve) => setTimeout(resolve, int(3)))
        }
        await microtasks()
        check(step)
        if (held.queued.length === 0 && tab.pending.count('m') === 0) {
          expect(shown.at(-1), `nothing in flight (${where}, step ${step})`).toEqual(await truth(held, query))
        }
      }

      held.open()
      await Promise.all(writes)
      await until(() => tab.pending.count('m') === 0, 5000, `every answer (${where})`)
      await microtasks()
      check(STEPS)
      expect(shown.at(-1), `final rows (${where}, query ${JSON.stringify(query)})`).toEqual(await truth(held, query))
      stop()
    }
  })
})

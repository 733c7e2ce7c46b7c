/**
 * The tasks map has one schema, shared by the demo app and its relay (demo-app/src/schema.ts,
 * loaded by the relay with `--schema`). A client that bypasses the SDK and speaks the wire
 * protocol directly (support/raw-client.ts) cannot store a task that does not fit it: the
 * relay answers each invalid change with SCHEMA_VALIDATION naming the failing field, keeps
 * the connection open, stores the valid change of the same batch, and the board of a person
 * shows the valid task and never the invalid ones.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { NODE_SOURCE_FLAGS } from '../scripts/source-conditions'
import { Board } from './support/board'
import { expect, test } from './support/fixtures'
import { E2E_DIR, REPO_ROOT } from './support/stack'

const RAW_CLIENT = join(E2E_DIR, 'support', 'raw-client.ts')

interface RawResult {
  readonly results: ({ code: string; message: string; details?: { path?: string } } | null)[]
  readonly open: boolean
}

function rawWrite(relayUrl: string, changes: { key: string; record: Record<string, unknown> }[]): RawResult {
  const run = spawnSync(process.execPath, [...NODE_SOURCE_FLAGS, RAW_CLIENT, relayUrl, JSON.stringify(changes)], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 })
  if (run.status !== 0) throw new Error(`raw client failed (${run.status}): ${run.stderr}`)
  return JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as RawResult
}

test('a raw protocol client cannot store a task the shared schema refuses', async ({ outpost }) => {
  const board = new Board(await (await outpost.newDevice()).open({ db: 'schema', me: 'Kim' }))
  await board.expectConnection('live')
  const valid = { title: outpost.unique('From a script'), status: 'todo', assignee: 'Kim', priority: 2, notes: '', createdAt: Date.now() }
  const badPriority = { ...valid, title: outpost.unique('Priority 99'), priority: 99 }
  const noStatus = { title: outpost.unique('No status'), assignee: 'Kim', priority: 2, notes: '', createdAt: Date.now() }

  const answer = rawWrite(outpost.relayUrl, [
    { key: outpost.unique('traw'), record: badPriority },
    { key: outpost.unique('traw'), record: noStatus },
    { key: outpost.unique('traw'), record: valid },
  ])

  expect(answer.results.map((r) => r?.code ?? null)).toEqual(['SCHEMA_VALIDATION', 'SCHEMA_VALIDATION', null])
  expect(answer.results[0]?.details?.path).toBe('priority')
  expect(answer.results[1]?.details?.path).toBe('status')
  expect(answer.open).toBe(true)
  // The valid task reaches the board; the refused ones were never stored, so no device ever shows them.
  await expect(board.taskTitled(valid.title)).toHaveCount(1)
  await expect(board.taskTitled(badPriority.title)).toHaveCount(0)
  await expect(board.taskTitled(noStatus.title)).toHaveCount(0)
  const fresh = new Board(await (await outpost.newDevice()).open({ db: 'schema-fresh', me: 'Lou' }))
  await expect(fresh.taskTitled(valid.title)).toHaveCount(1)
  await expect(fresh.taskTitled(badPriority.title)).toHaveCount(0)
  await outpost.screenshot(board.page, 'schema')
})

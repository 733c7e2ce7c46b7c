/**
 * The relay enforces the app's schemas on every write path, whatever the client: a raw
 * protocol client (no SDK) cannot store an invalid record, a partial update is validated
 * against the merged record, two concurrent edits that are each valid but break a
 * cross-field refinement together end with the later one refused (the documented rule),
 * entry processors and the HTTP fallback go through the same check, strict mode refuses
 * maps without a schema, and refusals are per-op errors on a connection that stays open.
 */
import { request } from 'node:http'
import { Hlc, decodeServerMessage, encodeMessage, type AckMessage, type ErrorMessage, type RecordValue, type ReplicaId, type SchemaSet, type ServerMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { TestClient, startRelay } from './helpers/client'
import { set, update } from './helpers/changes'
import { LocalShape } from './helpers/replica'
import { expectType, invoke } from './helpers/primitives'
import type { RelayConfigInput, RelayOptions } from '../src/index'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const schemas = {
  tasks: { version: 1, schema: z.object({ title: z.string().min(1), done: z.boolean() }) },
  spans: {
    version: 1,
    schema: z.object({ start: z.number(), end: z.number() }).refine((s) => s.start <= s.end, { message: 'start must not be after end', path: ['end'] }),
  },
} satisfies SchemaSet

async function relay(config: RelayConfigInput = {}, options: RelayOptions = { schemas }) {
  const started = await startRelay(config, options)
  cleanups.push(started.stop)
  return started.relay
}

async function connect(url: string, options = {}) {
  const { client } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return client
}

/** What a fresh subscriber of `map` receives from the relay: the stored records. */
async function stored(url: string, map: string): Promise<Map<string, RecordValue | undefined>> {
  const client = await connect(url)
  const shape = new LocalShape({ map })
  await shape.sync(client, false)
  const out = new Map<string, RecordValue | undefined>()
  for (const key of shape.states.keys()) out.set(key, shape.view(key))
  return out
}

function codes(ack: AckMessage): (string | null)[] {
  return ack.results.map((r) => r?.code ?? null)
}

describe('schema enforcement', () => {
  it('a raw protocol client cannot store an invalid record; the refusal names the path and the connection stays open', async () => {
    const r = await relay()
    const raw = await connect(r.url)
    const ack = await raw.ops([
      set(raw.clock, 'tasks', 'bad', { title: '', done: false }),
      set(raw.clock, 'tasks', 'wrong-type', { title: 'x', done: 'yes' }),
      set(raw.clock, 'tasks', 'good', { title: 'ok', done: false }),
    ])
    expect(codes(ack)).toEqual(['SCHEMA_VALIDATION', 'SCHEMA_VALIDATION', null])
    expect(ack.results[0]?.details?.['path']).toBe('title')
    expect(ack.results[1]?.details?.['path']).toBe('done')
    expect(ack.results[0]?.message).toContain('tasks/bad')
    // Still open: the next batch is answered.
    expect(codes(await raw.ops([update(raw.clock, 'tasks', 'good', { done: true })]))).toEqual([null])
    expect(raw.ws.readyState).toBe(raw.ws.OPEN)
    const records = await stored(r.url, 'tasks')
    expect([...records.keys()]).toEqual(['good'])
    expect(records.get('good')).toEqual({ title: 'ok', done: true })
  })

  it('validates a partial update against the merged record', async () => {
    const r = await relay()
    const raw = await connect(r.url)
    expect(codes(await raw.ops([set(raw.clock, 'tasks', 't1', { title: 'a', done: false })]))).toEqual([null])
    // Valid alone as a patch, but the merged record has an empty title.
    const ack = await raw.ops([update(raw.clock, 'tasks', 't1', { title: '' })])
    expect(codes(ack)).toEqual(['SCHEMA_VALIDATION'])
    // A field write that revives a deleted record must make a whole valid record.
    const revive = await raw.ops([update(raw.clock, 'tasks', 'fresh', { done: true })])
    expect(codes(revive)).toEqual(['SCHEMA_VALIDATION'])
    expect(revive.results[0]?.details?.['path']).toBe('title')
    expect((await stored(r.url, 'tasks')).get('t1')).toEqual({ title: 'a', done: false })
  })

  it('concurrent valid edits that break a cross-field refinement: the one that reaches the relay second is refused', async () => {
    const r = await relay()
    const a = await connect(r.url)
    const b = await connect(r.url)
    expect(codes(await a.ops([set(a.clock, 'spans', 's', { start: 1, end: 5 })]))).toEqual([null])
    // Both made offline against { start: 1, end: 5 }: each is valid alone (1 <= 2, 4 <= 5).
    const shrink = update(a.clock, 'spans', 's', { end: 2 })
    const move = update(b.clock, 'spans', 's', { start: 4 })
    expect(codes(await a.ops([shrink]))).toEqual([null])
    const second = await b.ops([move])
    expect(codes(second)).toEqual(['SCHEMA_VALIDATION'])
    expect(second.results[0]?.details?.['path']).toBe('end')
    expect((await stored(r.url, 'spans')).get('s')).toEqual({ start: 1, end: 2 })
  })

  it('entry processors are checked like any write', async () => {
    const r = await relay({}, {
      schemas,
      functions: { processors: { blank: ({ value }) => ({ value: { ...value, title: '' }, result: null }) } },
    })
    const raw = await connect(r.url)
    await raw.ops([set(raw.clock, 'tasks', 't', { title: 'a', done: false })])
    const refused = expectType(await invoke(raw, 'tasks', 't', 'blank', null), 'error') as ErrorMessage
    expect(refused.error.code).toBe('SCHEMA_VALIDATION')
    expect((await stored(r.url, 'tasks')).get('t')).toEqual({ title: 'a', done: false })
  })

  it('the HTTP fallback (POST /sync, acks on GET /events) is checked like any write', async () => {
    const r = await relay()
    const post = async (message: unknown, session?: string) => {
      const response = await fetch(`${r.httpUrl}/sync`, {
        method: 'POST',
        headers: { 'content-type': 'application/msgpack', ...(session === undefined ? {} : { 'x-outpost-session': session }) },
        body: encodeMessage(message as never, 1),
      })
      await response.arrayBuffer()
      return response.headers.get('x-outpost-session') ?? undefined
    }
    const session = (await post({ type: 'hello', versions: [1], replicaId: 'http-schema', clientTime: Date.now() })) as string
    // The acks arrive on the event stream (base64 msgpack frames in `data:` lines).
    const acks: ServerMessage[] = []
    const stream = request(`${r.httpUrl}/events?session=${session}`, (res) => {
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end)
          const data = event.split('\n').find((line) => line.startsWith('data: '))
          buffer = buffer.slice(end + 2)
          // Named events (`event: …`) are the transport's own; frames are unnamed.
          if (data !== undefined && !event.startsWith('event:')) acks.push(decodeServerMessage(Buffer.from(data.slice(6), 'base64')))
        }
      })
    })
    stream.on('error', () => undefined)
    stream.end()
    cleanups.push(async () => void stream.destroy())
    const clock = new Hlc({ replicaId: 'http-schema' as ReplicaId })
    await post({ type: 'ops', id: 7, changes: [set(clock, 'tasks', 'h1', { title: '', done: false }), set(clock, 'tasks', 'h2', { title: 'ok', done: true })] }, session)
    await expect.poll(() => acks.find((m) => m.type === 'ack' && m.id === 7), { timeout: 10_000 }).toBeDefined()
    const ack = acks.find((m) => m.type === 'ack' && m.id === 7) as AckMessage
    expect(codes(ack)).toEqual(['SCHEMA_VALIDATION', null])
    expect(ack.results[0]?.details?.['path']).toBe('title')
    expect([...(await stored(r.url, 'tasks')).keys()]).toEqual(['h2'])
  })

  it('strict mode refuses LWW writes to maps without a schema; optional mode lets them through', async () => {
    const strict = await relay({ schemaMode: 'strict' })
    const raw = await connect(strict.url)
    const ack = await raw.ops([set(raw.clock, 'notes', 'n', { text: 'hi' }), set(raw.clock, 'tasks', 't', { title: 'a', done: false })])
    expect(codes(ack)).toEqual(['SCHEMA_VALIDATION', null])
    expect(ack.results[0]?.message).toContain('strict')
    const optional = await relay()
    const other = await connect(optional.url)
    expect(codes(await other.ops([set(other.clock, 'notes', 'n', { text: 'hi' })]))).toEqual([null])
  })
})

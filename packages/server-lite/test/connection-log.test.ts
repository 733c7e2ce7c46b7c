/**
 * Connection lifecycle logging, as an operator reads it: the relay runs as a child process
 * at `info` and every connection's open, refusal and close is one JSON line with the same
 * fields; closes caused by a limit are `warn` with the reason, others `info`; and each
 * close is counted in `/metrics` as `outpost_connection_closes_total{reason}`.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CLOSE, CLOSE_LABELS, classifyClose } from '../src/index'
import { TestClient, tempDir } from './helpers/client'
import { spawnRelay, type RelayLogLine, type RelayProcess } from './helpers/relay-process'
import { AUTH, token } from './helpers/tokens'

const relays: RelayProcess[] = []
const dirs: { remove: () => void }[] = []
afterEach(async () => {
  for (const relay of relays.splice(0)) {
    relay.child.kill('SIGKILL')
    await relay.exited
  }
  for (const dir of dirs.splice(0)) dir.remove()
})

const INFO = 30
const WARN = 40
/** Fields every connection line carries. */
const CONNECTION_FIELDS = ['level', 'time', 'service', 'msg', 'session', 'transport', 'remote', 'subject', 'replica']
/** Fields every close or refusal line carries on top. */
const CLOSE_FIELDS = [...CONNECTION_FIELDS, 'code', 'reason', 'label', 'durationMs']

/** The `outpost_connection_closes_total` samples, by reason label. */
async function closesByReason(httpUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const match of text.matchAll(/^outpost_connection_closes_total\{reason="([a-z_]+)"\} (\d+)$/gm)) out[match[1] as string] = Number(match[2])
  return out
}

/** Waits until the relay logged a line matching `predicate` (its stdout arrives asynchronously). */
async function logged(relay: RelayProcess, predicate: (line: RelayLogLine) => boolean): Promise<RelayLogLine> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const line = relay.logs().find(predicate)
    if (line !== undefined) return line
    if (Date.now() > deadline) throw new Error(`no matching log line; connection lines: ${JSON.stringify(relay.logs().filter((l) => String(l.msg).startsWith('connection')))}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Waits for the close or refusal line matching `predicate`. */
function endOf(relay: RelayProcess, predicate: (line: RelayLogLine) => boolean): Promise<RelayLogLine> {
  return logged(relay, (l) => (l.msg === 'connection closed' || l.msg === 'connection refused') && predicate(l))
}

describe('connection lifecycle log and metrics', () => {
  it('logs open, refusal and close with the same fields, limits at warn, and counts each close by reason', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const config = join(dir.path, 'relay.json')
    writeFileSync(config, JSON.stringify({ auth: AUTH, limits: { maxFrameBytes: 65_536, helloTimeoutMs: 300, maxConnectionsPerSubject: 1 } }))
    const relay = await spawnRelay(join(dir.path, 'data'), { args: ['--config', config], env: { OUTPOST_LOG_LEVEL: 'info' } })
    relays.push(relay)
    const before = await closesByReason(relay.httpUrl)
    // Every reason is exported from the start, at zero.
    expect(Object.keys(before).sort()).toEqual(expect.arrayContaining(['client_closed', 'frame_too_large', 'hello_timeout', 'limit', 'unauthenticated', 'heartbeat', 'slow_consumer']))
    expect(Object.values(before).every((n) => n === 0)).toBe(true)

    // 1. A normal session: opened, then closed by the client (info).
    const { client: ada } = await TestClient.connect(relay.url, { token: await token('ada') })
    const opened = await logged(relay, (l) => l.msg === 'connection opened' && l['subject'] === 'ada')
    expect(opened).toMatchObject({ level: INFO, replica: ada.replicaId, transport: 'ws', remote: '127.0.0.1' })

    // 2. Over the per-subject connection cap: refused with 4008 (a limit, warn).
    const second = await TestClient.open(relay.url)
    second.hello({ token: await token('ada') })
    expect((await second.closed).code).toBe(CLOSE.LIMIT)
    const limited = await endOf(relay, (l) => l['code'] === CLOSE.LIMIT)
    expect(limited).toMatchObject({ msg: 'connection refused', level: WARN, label: 'limit' })
    expect(String(limited['reason'])).toMatch(/already has 1 connections/)

    await ada.close()
    const adaClosed = await endOf(relay, (l) => l['subject'] === 'ada' && l.msg === 'connection closed')
    expect(adaClosed).toMatchObject({ level: INFO, label: 'client_closed', code: 1005, transport: 'ws', replica: ada.replicaId })

    // 3. A bad token: refused with 4001 (info: not a limit).
    const anonymous = await TestClient.open(relay.url)
    anonymous.hello({ token: 'not-a-jwt' })
    expect((await anonymous.closed).code).toBe(CLOSE.UNAUTHENTICATED)
    expect(await endOf(relay, (l) => l['code'] === CLOSE.UNAUTHENTICATED)).toMatchObject({ msg: 'connection refused', level: INFO, label: 'unauthenticated' })

    // 4. No hello at all: closed after helloTimeoutMs with 4010 (warn).
    const silent = await TestClient.open(relay.url)
    expect((await silent.closed).code).toBe(CLOSE.HELLO_TIMEOUT)
    const timedOut = await endOf(relay, (l) => l['code'] === CLOSE.HELLO_TIMEOUT)
    expect(timedOut).toMatchObject({ msg: 'connection refused', level: WARN, label: 'hello_timeout' })
    expect(String(timedOut['reason'])).toMatch(/no hello within 300 ms/)

    // 5. A frame over maxFrameBytes on an open session: closed with 1009 (warn).
    const { client: bob } = await TestClient.connect(relay.url, { token: await token('bob') })
    bob.sendRaw(new Uint8Array(128 * 1024))
    expect((await bob.closed).code).toBe(CLOSE.TOO_BIG)
    const tooBig = await endOf(relay, (l) => l['subject'] === 'bob')
    expect(tooBig).toMatchObject({ msg: 'connection closed', level: WARN, label: 'frame_too_large', code: CLOSE.TOO_BIG })
    expect(String(tooBig['reason'])).toMatch(/maxFrameBytes/)

    // The same fields on every connection line, and the base fields on every line.
    for (const line of relay.logs()) {
      expect(Object.keys(line)).toEqual(expect.arrayContaining(['level', 'time', 'service', 'msg']))
      if (line.msg === 'connection opened') expect(Object.keys(line)).toEqual(expect.arrayContaining(CONNECTION_FIELDS))
      if (line.msg === 'connection closed' || line.msg === 'connection refused') expect(Object.keys(line).sort()).toEqual([...CLOSE_FIELDS].sort())
    }

    const after = await closesByReason(relay.httpUrl)
    const delta = Object.fromEntries(Object.entries(after).filter(([reason, n]) => n !== (before[reason] ?? 0)))
    expect(delta).toEqual({ client_closed: 1, limit: 1, unauthenticated: 1, hello_timeout: 1, frame_too_large: 1 })
  })

  it('labels every close code from one table: limits warn, the rest info', () => {
    const warn = ['policy', 'frame_too_large', 'hello_expected', 'limit', 'slow_consumer', 'hello_timeout', 'heartbeat', 'internal_error']
    for (const [code, entry] of Object.entries(CLOSE_LABELS)) {
      expect(classifyClose(Number(code))).toBe(entry)
      expect(entry.level).toBe(warn.includes(entry.label) ? 'warn' : 'info')
    }
    expect(classifyClose(CLOSE.HEARTBEAT_TIMEOUT).label).toBe('heartbeat')
    expect(classifyClose(CLOSE.SLOW_CONSUMER).label).toBe('slow_consumer')
    expect(classifyClose(4999)).toMatchObject({ label: 'other', level: 'info' })
  })
})

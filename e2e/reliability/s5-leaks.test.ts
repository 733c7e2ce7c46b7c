/**
 * S5 — nothing outside the rules. Random cases, each over its own map of an in-process
 * relay with JWT auth: a random rule (claim-bound row filter, key rule, read access by
 * claim; support-b/leak-oracle.ts), three users with random claims, each with a device (a
 * raw protocol client and its local replica of a random shape) and subscribed to two
 * topics readable by one team each. Rounds of random writes, deletes and topic messages;
 * between rounds a user goes offline, gets new claims (a new token) while others write,
 * and reconnects with the same replica and its stale data.
 *
 * Checked for every case:
 * - every device holds exactly filter(reference, rules): the keys and Merkle root of the
 *   reference's members under its claims and shape (reference = the writes the relay
 *   acked), and a fresh subscription's root digest equals that root;
 * - on the wire, nothing beyond it: every record (alive or tombstone) sent was a member
 *   under the connection's claims in some state it had, carries no field outside the
 *   projection, every move-out names a key the caller could see in some state or its device
 *   held when it connected (a revoked record it must drop), the relay
 *   never asks a device to push, and a topic message reaches only a team allowed to read it;
 * - the relay accepts a write exactly when the rules allow it (FORBIDDEN otherwise).
 *
 * Full: 1,000 cases; CI: 100 (25 per relay). Seeded: case i uses seed + i; a failing case
 * prints its seed, and OUTPOST_SEED=<that> OUTPOST_S5_CASES=1 replays it alone.
 */
import { CrdtMap, lwwDeleteState, lwwUpdateState, type LwwRecordState, type ServerMessage } from '@outpost/core'
import { afterAll, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from '../../packages/server-lite/test/helpers/client'
import { LocalShape } from '../../packages/server-lite/test/helpers/replica'
import { between, pick, prng, testSeed } from '../../packages/server-lite/test/helpers/seed'
import { AUTH, token } from '../../packages/server-lite/test/helpers/tokens'
import { CallerView, TEAMS, randomClaims, randomPatch, randomRule, randomShape, type MapRuleSpec, type UserClaims } from './support-b/leak-oracle'
import { recordResult, reliabilityMode, scaled } from './support/results'

const CASES = Number(process.env['OUTPOST_S5_CASES'] ?? scaled(1_000, 100))
const CASES_PER_RELAY = 25
const USERS = 3
const ROUNDS = 3
const WRITES_PER_ROUND = 5

/** One connection of a user: its claims are fixed for its life, so its messages are audited against them. */
interface Connection {
  readonly client: TestClient
  readonly view: CallerView
  readonly topics: readonly string[]
  /** Keys the device held when it connected (it tells the relay of them while reconciling). */
  readonly held: ReadonlySet<string>
}

/** A user: subject, current claims, device, and every connection it has had. */
interface User {
  readonly sub: string
  readonly replicaId: string
  claims: UserClaims
  readonly shape: LocalShape
  online: Connection | undefined
  readonly connections: Connection[]
  /** Index in the current connection's log after the last message the device has absorbed. */
  cursor: number
}

/** What went wrong in one case (empty: the case passed). */
type Findings = string[]

const stops: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
})

function caseMap(index: number): string {
  return `s5m${index}`
}

function caseTopics(index: number): string[] {
  return TEAMS.map((team) => `s5t${index}:${team}`)
}

/** Rules for a batch of cases: each case its own map and its two topics. */
function batchRules(first: number, rules: readonly MapRuleSpec[]): Record<string, unknown> {
  const maps: Record<string, MapRuleSpec> = {}
  const topics: Record<string, unknown> = {}
  rules.forEach((rule, i) => {
    maps[caseMap(first + i)] = rule
    for (const team of TEAMS) topics[`s5t${first + i}:${team}`] = { publish: 'authenticated', subscribe: { eq: ['team', team] } }
  })
  return { maps, topics }
}

async function barrier(client: TestClient): Promise<void> {
  const marker = Math.random()
  client.send({ type: 'ping', clientTime: marker })
  await client.waitAny((m) => m.type === 'pong' && m.clientTime === marker)
}

/** Runs one case against `relayUrl`; returns what it found wrong. */
async function runCase(relayUrl: string, index: number, seed: number, rule: MapRuleSpec): Promise<{ findings: Findings; writes: number; refused: number; audited: number }> {
  const random = prng(seed)
  const map = caseMap(index)
  const topics = caseTopics(index)
  const findings: Findings = []
  const subs = Array.from({ length: USERS }, (_, u) => `c${index}u${u}`)
  const reference = CrdtMap.of('lww')
  /** Every state each key has had on the relay (after each accepted write). */
  const history = new Map<string, LwwRecordState[]>()
  let writes = 0
  let refused = 0

  const connect = async (user: User): Promise<void> => {
    const { client } = await TestClient.connect(relayUrl, { token: await token(user.sub, { claims: user.claims }), replicaId: user.replicaId })
    const view = new CallerView(rule, { ...user.claims, sub: user.sub }, user.shape.shape)
    const allowed = topics.filter((t) => t.endsWith(`:${String(user.claims['team'])}`))
    for (const topic of topics) client.send({ type: 'topic-sub', topic })
    const connection: Connection = { client, view, topics: allowed, held: new Set(user.shape.states.keys()) }
    user.connections.push(connection)
    user.online = connection
    if (!view.readable) {
      client.send({ type: 'subscribe', sub: user.shape.sub, shape: user.shape.shape })
      const reply = await client.waitAny((m) => 'sub' in m && m.sub === user.shape.sub && (m.type === 'error' || m.type === 'synced'))
      if (reply.type !== 'error' || reply.error.code !== 'FORBIDDEN') findings.push(`${user.sub} may not read ${map} but subscribing answered ${reply.type}`)
      // As the worker does on FORBIDDEN: what the device held of the shape goes.
      for (const key of [...user.shape.states.keys()]) user.shape.drop(key)
      user.cursor = client.messages.length
      return
    }
    const report = await user.shape.sync(client)
    if (report.pushed.length > 0) findings.push(`the relay asked ${user.sub}'s device to push ${JSON.stringify(report.pushed)}`)
    // Live changes after the last `synced` of this sync are the device's to absorb.
    let last = client.messages.length - 1
    while (last >= 0 && !((client.messages[last] as ServerMessage).type === 'synced' && (client.messages[last] as { sub: number }).sub === user.shape.sub)) last--
    user.cursor = last + 1
  }

  /** Absorbs the live changes a device received since its last sync or drain. */
  const drain = (user: User): void => {
    const connection = user.online
    if (connection === undefined) return
    const log = connection.client.messages
    for (; user.cursor < log.length; user.cursor++) {
      const m = log[user.cursor] as ServerMessage
      if (m.type === 'changes' && m.sub === user.shape.sub) user.shape.absorb(m)
    }
  }

  const users: User[] = []
  for (const sub of subs) {
    const user: User = { sub, replicaId: `${sub}-${seed}`, claims: randomClaims(random), shape: new LocalShape(randomShape(random, map)), online: undefined, connections: [], cursor: 0 }
    users.push(user)
    await connect(user)
  }

  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (let w = 0; w < WRITES_PER_ROUND; w++) {
        const writer = pick(random, users.filter((u) => u.online !== undefined))
        const connection = writer.online as Connection
        const owner = random() < 0.6 ? writer.sub : pick(random, subs)
        const key = random() < 0.8 ? `${owner}/k${between(random, 0, 3)}` : `k${between(random, 0, 3)}`
        const current = reference.get(key)
        const state = current !== undefined && random() < 0.2 ? lwwDeleteState(connection.client.clock.tick()) : lwwUpdateState(randomPatch(random, subs), connection.client.clock.tick())
        const allowed = connection.view.mayWrite(key, current, state)
        const ack = await connection.client.ops([{ kind: 'lww', map, key, state }])
        const result = ack.results[0]
        writes++
        if (result === null) {
          if (!allowed) findings.push(`write of ${key} by ${writer.sub} ${JSON.stringify(writer.claims)} was accepted against the rules`)
          const merged = reference.apply(key, state)
          if (merged !== undefined) history.set(key, [...(history.get(key) ?? []), merged])
          // The writer's device applies its own write locally, as the worker does: the relay
          // fans a change out to the other subscribers, not back to its writer.
          const mine = reference.get(key) as LwwRecordState
          if (connection.view.member(mine)) writer.shape.apply(key, state)
          else writer.shape.drop(key)
        } else {
          refused++
          if (result?.code !== 'FORBIDDEN') findings.push(`write of ${key} by ${writer.sub} refused with ${String(result?.code)}: ${String(result?.message)}`)
          else if (allowed) findings.push(`write of ${key} by ${writer.sub} ${JSON.stringify(writer.claims)} was refused though the rules allow it: ${result.message}`)
        }
      }
      // A topic message to each team's topic, from someone online.
      const publisher = pick(random, users.filter((u) => u.online !== undefined)).online as Connection
      for (const topic of topics) publisher.client.send({ type: 'topic-pub', id: 900 + round, topic, data: { round, topic } })

      // Someone who was offline comes back with the claims they have now.
      for (const user of users) if (user.online === undefined) await connect(user)
      // Someone goes offline and their claims change meanwhile.
      if (round < ROUNDS - 1 && random() < 0.7) {
        const leaving = pick(random, users)
        for (const user of users) drain(user)
        await (leaving.online as Connection).client.close()
        leaving.online = undefined
        leaving.claims = randomClaims(random)
      }
    }
    for (const user of users) if (user.online === undefined) await connect(user)

    // Quiesce: every write is acked; each live device has received what was sent before its pong.
    for (const user of users) await barrier((user.online as Connection).client)
    for (const user of users) drain(user)

    const states = new Map<string, LwwRecordState>()
    for (const [key, state] of reference.entries()) states.set(key, state as LwwRecordState)
    let audited = 0
    for (const user of users) {
      const connection = user.online as Connection
      const expected = connection.view.expectedTree(states)
      const held = [...user.shape.states.keys()].sort()
      const want = [...expected.keys()].sort()
      if (JSON.stringify(held) !== JSON.stringify(want)) findings.push(`${user.sub} ${JSON.stringify(user.claims)} shape ${JSON.stringify(user.shape.shape)} holds ${JSON.stringify(held)}, rules allow exactly ${JSON.stringify(want)}`)
      else if (connection.view.readable && user.shape.tree.root().hash !== expected.root().hash) findings.push(`${user.sub} holds the right keys with different contents (root ${user.shape.tree.root().hash} vs ${expected.root().hash})`)
      if (connection.view.readable) {
        // The relay's digest of this caller's shape covers exactly the allowed records.
        const sub = user.shape.sub + 10_000
        connection.client.send({ type: 'subscribe', sub, shape: user.shape.shape, root: expected.root() })
        const answer = await connection.client.waitAny((m) => 'sub' in m && m.sub === sub && (m.type === 'subscribed' || m.type === 'error'))
        if (answer.type !== 'subscribed') findings.push(`${user.sub}: digest probe answered ${answer.type}`)
        else if (answer.root.hash !== expected.root().hash || answer.root.count !== expected.root().count) findings.push(`${user.sub}: the relay's root ${JSON.stringify(answer.root)} differs from the allowed records' ${JSON.stringify(expected.root())}`)
        connection.client.send({ type: 'unsubscribe', sub })
      }

      // The wire audit: everything each connection of this user ever received.
      for (const { client, view, topics: allowed, held } of user.connections) {
        for (const m of client.messages) {
          audited++
          if (m.type === 'changes') {
            for (const change of m.changes) {
              if (change.kind !== 'lww' || change.map !== map) continue
              const past = history.get(change.key) ?? []
              if (!past.some((s) => view.member(s))) findings.push(`${user.sub} ${JSON.stringify(view.claims)} received ${change.key}, never a member for it: ${JSON.stringify(change.state).slice(0, 300)}`)
              const fields = view.shape.fields
              if (fields !== undefined) for (const [name] of change.state.fields) if (!fields.includes(name)) findings.push(`${user.sub} received field ${name} of ${change.key} outside its projection ${JSON.stringify(fields)}`)
            }
            for (const key of m.moveOut ?? []) {
              const past = history.get(key) ?? []
              if (!held.has(key) && !past.some((s) => view.visible(s))) findings.push(`${user.sub} ${JSON.stringify(view.claims)} was told ${key} moved out, a key it could never see`)
            }
          }
          if (m.type === 'topic-msg' && !allowed.includes(m.topic)) findings.push(`${user.sub} ${JSON.stringify(view.claims)} received a message on ${m.topic}`)
          if (m.type === 'push' && m.sub === user.shape.sub) findings.push(`${user.sub} was asked to push ${JSON.stringify(m.keys)}`)
        }
      }
    }
    return { findings, writes, refused, audited }
  } finally {
    for (const user of users) if (user.online !== undefined) await user.online.client.close()
  }
}

describe('S5: nothing outside the rules reaches a client', () => {
  it(`every client holds exactly filter(reference, rules) over ${CASES} random cases`, async () => {
    const seed = testSeed('S5')
    const began = Date.now()
    const failedSeeds: number[] = []
    const examples: string[] = []
    let writes = 0
    let refused = 0
    let audited = 0
    for (let first = 0; first < CASES; first += CASES_PER_RELAY) {
      const count = Math.min(CASES_PER_RELAY, CASES - first)
      const rules = Array.from({ length: count }, (_, i) => randomRule(prng((seed + first + i) ^ 0x5bd1e995)))
      const { relay, stop } = await startRelay({ auth: AUTH, rules: batchRules(first, rules) as never })
      try {
        for (let i = 0; i < count; i++) {
          const index = first + i
          const caseSeed = (seed + index) >>> 0
          const outcome = await runCase(relay.url, index, caseSeed, rules[i] as MapRuleSpec)
          writes += outcome.writes
          refused += outcome.refused
          audited += outcome.audited
          if (outcome.findings.length > 0) {
            failedSeeds.push(caseSeed)
            console.error(`S5 case ${index} (OUTPOST_SEED=${caseSeed} OUTPOST_S5_CASES=1; rule ${JSON.stringify(rules[i])}):\n  ${outcome.findings.slice(0, 8).join('\n  ')}`)
            if (examples.length < 5) examples.push(`case seed ${caseSeed}: ${outcome.findings[0] ?? ''}`)
          }
        }
      } finally {
        await stop()
      }
    }
    const elapsed = Date.now() - began
    console.log(`S5: seed ${seed}: ${CASES} cases, ${writes} writes (${refused} refused), ${audited} messages audited, ${failedSeeds.length} failing cases, in ${(elapsed / 1000).toFixed(1)} s`)
    recordResult({
      id: 'S5',
      what: `random claim-bound filters, key rules, read rules, shapes, topic rules, claim changes while offline; ${USERS} raw protocol clients per case`,
      target: 'every client holds exactly filter(reference, rules); no row, digest, tombstone, move-out or topic message beyond it',
      conditions: `${reliabilityMode()} mode, seed ${seed} (case i: seed + i), ${CASES_PER_RELAY} cases per in-process relay, ${ROUNDS} rounds × ${WRITES_PER_ROUND} writes per case`,
      figures: { cases: String(CASES), writes: String(writes), 'refused (FORBIDDEN)': String(refused), 'messages audited': String(audited), 'failing cases': String(failedSeeds.length), seconds: (elapsed / 1000).toFixed(1) },
      passed: failedSeeds.length === 0,
      ...(failedSeeds.length === 0 ? {} : { failedSeeds }),
    })
    expect(examples, `failing case seeds ${failedSeeds.join(', ')}`).toEqual([])
  })
})

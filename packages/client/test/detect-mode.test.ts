/** Which runtime a browser gets, and the names that keep deploys apart. */
import { PROTOCOL_VERSION } from '@outpost/core'
import { describe, expect, it } from 'vitest'
import { detectMode, leaderLockName, sharedWorkerName, WORKER_VERSION } from '../src/index'

class Fake {}

describe('runtime selection', () => {
  it('prefers SharedWorker, then a Web Locks leader tab, then the page', () => {
    const locks = { request: () => Promise.resolve() }
    expect(detectMode({ SharedWorker: Fake, Worker: Fake, BroadcastChannel: Fake, navigator: { locks } })).toBe('shared-worker')
    expect(detectMode({ Worker: Fake, BroadcastChannel: Fake, navigator: { locks } })).toBe('leader-tab')
    expect(detectMode({ Worker: Fake, BroadcastChannel: Fake, navigator: {} })).toBe('in-page')
    expect(detectMode({ BroadcastChannel: Fake, navigator: { locks } })).toBe('in-page')
    expect(detectMode({})).toBe('in-page')
  })

  it('puts the protocol and worker versions in the SharedWorker name', () => {
    expect(PROTOCOL_VERSION).toBe(2)
    expect(sharedWorkerName('my-app')).toBe(`outpost:my-app:p2:w${WORKER_VERSION}`)
    expect(leaderLockName('my-app')).toBe('outpost:my-app:leader')
  })
})

/**
 * The heartbeat's deadline counts the peer's silence, not the relay's: a sweep that comes
 * long after it was due (the relay's event loop was stuck, so pongs and frames waited
 * unread in the sockets) gives every peer a full deadline from then; a peer that stays
 * silent is still expired after it.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { CLOSE } from '../src/connection-log'
import { Heartbeat, monotonicNow, type HeartbeatTarget } from '../src/heartbeat'

function target(closes: number[]): HeartbeatTarget & { lastHeard: number } {
  return {
    lastHeard: monotonicNow(),
    paused: false,
    closed: false,
    ping() {},
    close(code) {
      closes.push(code)
    },
  }
}

describe('Heartbeat', () => {
  it("does not expire peers for a stall of the relay's own event loop, and still expires the silent after it", async () => {
    const closes: number[] = []
    const peer = target(closes)
    const heartbeat = new Heartbeat({ intervalMs: 40, targets: () => [peer] })
    heartbeat.start()
    try {
      await sleep(30)
      // The event loop is stuck for 10 intervals: nothing the peer sent could be read.
      const until = monotonicNow() + 400
      while (monotonicNow() < until) {
        // busy: a long GC, a heap snapshot, a machine out of CPU
      }
      await sleep(30)
      expect(closes).toEqual([])
      // Truly silent from here on: expired once a full deadline has passed.
      for (let waited = 0; closes.length === 0 && waited < 10_000; waited += 20) await sleep(20)
      expect(closes).toEqual([CLOSE.HEARTBEAT_TIMEOUT])
    } finally {
      heartbeat.stop()
    }
  })
})

/** Outpost's relay (`@outpost/server-lite`, LMDB) in this process, seeded through the wire protocol. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRelay } from '@outpost/server-lite'
import { makeRecord } from '../lib/data'
import { WireClient } from '../lib/outpost-wire'
import type { SystemServer } from './system-server'

/** Limits raised so the harness's own bulk seeding and load are never rate-limited. */
export const BENCH_LIMITS = {
  maxFrameBytes: 8 * 1024 * 1024,
  opsPerSecond: 10_000_000,
  opsBurst: 10_000_000,
  subjectOpsPerSecond: 10_000_000,
  subjectOpsBurst: 10_000_000,
  // Large initial slices are sent at once today; the harness measures them, not the slow-consumer limit.
  maxBufferedBytesPerConnection: 1024 * 1024 * 1024,
  maxConnectionsPerSubject: 10_000,
}

/** Starts the relay on a free port with a temporary data directory. */
export async function startOutpostServer(): Promise<SystemServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'outpost-bench-relay-'))
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'error', limits: BENCH_LIMITS })
  let writer: WireClient | undefined
  const connectWriter = async (): Promise<WireClient> => (writer ??= await WireClient.connect(relay.url, 'bench-seeder'))
  return {
    port: relay.port,
    path: '',
    async seed(name, n) {
      const client = await connectWriter()
      await client.write(name, Array.from({ length: n }, (_, i) => makeRecord(i)))
      return name
    },
    async change(doc, indexes, rev) {
      const client = await connectWriter()
      await client.write(doc, indexes.map((i) => makeRecord(i, rev)))
    },
    async close() {
      await writer?.close()
      await relay.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

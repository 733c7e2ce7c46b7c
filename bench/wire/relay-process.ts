/**
 * A relay in its own process, so its CPU is measured apart from the client's. Started by
 * `wire-bytes.ts` with `fork`: argv is the data directory and the `compression` setting
 * (`off`, `on` or a threshold in bytes). It sends `{ port }` once listening, answers
 * `'cpu'` with its `process.cpuUsage()`, and closes on `'close'`.
 */
import { createRelay } from '@outpost/server-lite'
import { BENCH_LIMITS } from '../servers/outpost-server'

const [dataDir, setting] = process.argv.slice(2)
if (dataDir === undefined || setting === undefined) throw new Error('usage: relay-process.ts <data dir> <off|on|bytes>')
const compression = setting === 'off' ? false : setting === 'on' ? true : Number(setting)
// The default 1 MiB frame limit (what a deployed relay sends slices in); the rest lifted so seeding is not rate-limited.
const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'error', limits: { ...BENCH_LIMITS, maxFrameBytes: 1024 * 1024 }, compression })
process.send?.({ port: relay.port })
process.on('message', (message: unknown) => {
  if (message === 'cpu') process.send?.({ cpu: process.cpuUsage() })
  if (message === 'close') void relay.close().then(() => process.exit(0))
})

/**
 * Bytes on the wire and CPU of an initial sync in wire v1, v2, and v2 with
 * permessage-deflate, for 10k and 100k records of bench/lib/data.ts (six fields, ~200 B
 * as JSON). A figure, never a pass/fail.
 *
 *   node --conditions=@outpost/source --import tsx bench/wire/wire-bytes.ts [--records 10000,100000] [--runs 3] [--data bench|varied]
 *
 * `--data varied` gives each record a different title (20 words drawn from a list with a
 * seeded PRNG) instead of the shared filler, which compresses far better than app data.
 *
 * The relay runs in a child process (LMDB, default 1 MiB frames) so its CPU is its own;
 * a `ws` client in this process subscribes through a byte-counting TCP proxy (WebSocket
 * framing counted, TCP/IP headers not) and waits for `synced`. Medians of `runs`.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startCountingProxy } from '../lib/counting-proxy'
import { makeRecord } from '../lib/data'
import { WireClient } from '../lib/outpost-wire'
import { prng } from '@outpost/core/testing'

const here = dirname(fileURLToPath(import.meta.url))

function parseArgs(argv: readonly string[]): { records: number[]; runs: number; varied: boolean } {
  let records = [10_000, 100_000]
  let runs = 3
  let varied = false
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--records') records = (argv[++i] ?? '').split(',').map(Number)
    else if (argv[i] === '--runs') runs = Number(argv[++i])
    else if (argv[i] === '--data') varied = argv[++i] === 'varied'
    else throw new Error(`unknown argument ${argv[i]}; use --records 10000,100000 --runs 3 --data bench|varied`)
  }
  return { records, runs, varied }
}

const WORDS = 'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part'.split(' ')

/** Record `i` of the data set: the benchmark's, or with a title of its own. */
function recordOf(i: number, varied: boolean, random: () => number): ReturnType<typeof makeRecord> {
  const record = makeRecord(i)
  return varied ? { ...record, title: Array.from({ length: 20 }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ').slice(0, 110) } : record
}

/** A relay child process. */
interface RelayProcess {
  readonly port: number
  cpuMs(): Promise<number>
  close(): Promise<void>
}

async function startRelay(dataDir: string, compression: string): Promise<RelayProcess> {
  const child: ChildProcess = fork(join(here, 'relay-process.ts'), [dataDir, compression], { execArgv: ['--conditions=@outpost/source', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const next = <T>(key: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`relay process exited with ${code}`))
      const onMessage = (message: Record<string, unknown>): void => {
        if (!(key in message)) return
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(message[key] as T)
      }
      child.on('message', onMessage)
      child.once('exit', onExit)
    })
  const port = await next<number>('port')
  return {
    port,
    async cpuMs() {
      const answer = next<NodeJS.CpuUsage>('cpu')
      child.send('cpu')
      const usage = await answer
      return (usage.user + usage.system) / 1000
    },
    close: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve())
        child.send('close')
      }),
  }
}

/** What one initial sync cost. */
interface Sample {
  readonly down: number
  readonly up: number
  readonly ms: number
  readonly relayCpuMs: number
  readonly clientCpuMs: number
}

async function syncOnce(relay: RelayProcess, map: string, versions: number[], deflate: boolean, tag: string): Promise<Sample> {
  const proxy = await startCountingProxy(relay.port)
  try {
    const client = await WireClient.connect(proxy.url(), `reader-${tag}-${Math.random().toString(36).slice(2)}`, { versions, perMessageDeflate: deflate })
    if (client.version !== versions[versions.length - 1]) throw new Error(`negotiated ${client.version}, expected ${versions.at(-1)}`)
    proxy.reset()
    const relayBefore = await relay.cpuMs()
    const clientBefore = process.cpuUsage()
    const started = performance.now()
    await client.subscribe(1, { map })
    const ms = performance.now() - started
    const clientCpu = process.cpuUsage(clientBefore)
    const relayCpuMs = (await relay.cpuMs()) - relayBefore
    const bytes = proxy.bytes()
    const sample = { down: bytes.down, up: bytes.up, ms, relayCpuMs, clientCpuMs: (clientCpu.user + clientCpu.system) / 1000 }
    await client.close()
    return sample
  } finally {
    await proxy.close()
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

const CONFIGS = [
  { name: 'v1', versions: [1], compression: 'off', deflate: false },
  { name: 'v2', versions: [1, 2], compression: 'off', deflate: false },
  { name: 'v1 + deflate', versions: [1], compression: 'on', deflate: true },
  { name: 'v2 + deflate', versions: [1, 2], compression: 'on', deflate: true },
] as const

async function main(): Promise<void> {
  const { records, runs, varied } = parseArgs(process.argv.slice(2))
  const random = prng(11)
  const dataDir = await mkdtemp(join(tmpdir(), 'outpost-wire-bytes-'))
  const rows: string[] = []
  try {
    // Seed every map once; relays over the same data directory then serve it with and without compression.
    let relay = await startRelay(dataDir, 'off')
    const seeder = await WireClient.connect(`ws://127.0.0.1:${relay.port}`, 'bench-seeder')
    for (const n of records) await seeder.write(`records${n}`, Array.from({ length: n }, (_, i) => recordOf(i, varied, random)))
    await seeder.close()
    let current = 'off'
    for (const n of records) {
      for (const config of CONFIGS) {
        if (config.compression !== current) {
          await relay.close()
          relay = await startRelay(dataDir, config.compression)
          current = config.compression
        }
        await syncOnce(relay, `records${n}`, [...config.versions], config.deflate, 'warmup')
        const samples: Sample[] = []
        for (let r = 0; r < runs; r++) samples.push(await syncOnce(relay, `records${n}`, [...config.versions], config.deflate, `run${r}`))
        const m = (key: keyof Sample): number => median(samples.map((s) => s[key]))
        const row = `| ${n.toLocaleString('en')} | ${config.name} | ${(m('down') / 1024 / 1024).toFixed(2)} MiB | ${(m('down') / n).toFixed(1)} | ${(m('up') / 1024).toFixed(1)} KiB | ${m('ms').toFixed(0)} ms | ${m('relayCpuMs').toFixed(0)} ms | ${m('clientCpuMs').toFixed(0)} ms |`
        rows.push(row)
        process.stderr.write(`${row}\n`)
      }
    }
    await relay.close()
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
  console.log(`\nInitial sync over one WebSocket (${varied ? 'varied titles' : 'bench/lib/data.ts records'}; LMDB relay in its own process, 1 MiB frames, medians of ${runs}):\n`)
  console.log('| records | wire | bytes down | B/record | bytes up | wall | relay CPU | client CPU (ws, inflate, decode) |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const row of rows) console.log(row)
}

await main()

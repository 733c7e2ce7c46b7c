/**
 * The reliability harness: one Outpost client (local only unless `?relay=` is given) on
 * database `?db=`, driven by specs through `window.harness`. Each resolved write is also
 * announced on the console (`resolved <key>`), so a spec learns of it as it happens and
 * still knows it after the browser is killed.
 */
import { OutpostError, createClient, type OutpostClient } from '@outpost/client'

const params = new URLSearchParams(window.location.search)
const relay = params.get('relay')
const client: OutpostClient = createClient({ name: params.get('db') ?? 'harness', ...(relay === null ? {} : { url: relay }) })

/** What a failed write reports to the spec. */
interface WriteFailure {
  readonly key: string
  readonly name: string
  readonly code: string | undefined
  readonly message: string
}

let bursting = false

const harness = {
  /** The client's status (mode, storage). */
  status: () => JSON.parse(JSON.stringify(client.status.get())) as unknown,
  /**
   * Writes `${prefix}-0`, `${prefix}-1`, … to `map` with up to `inFlight` writes awaiting
   * their local commit at once, until `stop()`; logs `resolved <key>` for each.
   */
  startBurst(map: string, prefix: string, inFlight: number, padBytes: number): void {
    bursting = true
    const records = client.map(map)
    const pad = 'x'.repeat(padBytes)
    let next = 0
    const lane = async (): Promise<void> => {
      while (bursting) {
        const key = `${prefix}-${next++}`
        try {
          await records.set(key, { key, pad })
          console.log(`resolved ${key}`)
        } catch (error) {
          console.log(`failed ${key} ${error instanceof OutpostError ? error.code : String(error)}`)
        }
      }
    }
    for (let i = 0; i < inFlight; i++) void lane()
  },
  stop(): void {
    bursting = false
  },
  /** Which of `keys` the local database holds. */
  async present(map: string, keys: readonly string[]): Promise<string[]> {
    const records = client.map(map)
    const found: string[] = []
    for (const key of keys) if ((await records.get(key)) !== undefined) found.push(key)
    return found
  },
  /** The record at `key`, or null. */
  async read(map: string, key: string): Promise<unknown> {
    return (await client.map(map).get(key)) ?? null
  },
  /** Writes one record and waits for its local commit; resolves with the failure instead of throwing. */
  async write(map: string, key: string, record: Record<string, unknown>): Promise<WriteFailure | undefined> {
    try {
      await client.map(map).set(key, record as never)
      return undefined
    } catch (error) {
      return {
        key,
        name: error instanceof Error ? error.name : typeof error,
        code: error instanceof OutpostError ? error.code : undefined,
        message: error instanceof Error ? error.message : String(error),
      }
    }
  },
}

declare global {
  interface Window {
    harness: typeof harness
  }
}
window.harness = harness
const state = document.getElementById('state')
if (state !== null) state.textContent = 'ready'

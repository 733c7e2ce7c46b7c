/**
 * The relay's configuration: one zod schema, and {@link loadConfig}, which merges the
 * sources in this order (later wins): defaults < config file < environment < flags.
 *
 * Rules and other code-valued settings live in the config file (`.json`, or a `.js`/`.ts`
 * module whose default export is the config). Everything is validated at start; a bad
 * value becomes one {@link ConfigError} whose `details.issues` lists each field and how
 * to fix it, so the CLI can print them and exit 1.
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { CLI_OPTIONS, OPTION_BY_FLAG, coerce, numericProblem, parseFlags, type CliOption } from './cli-options'
import { importUserModule } from './load-module'
import { z } from 'zod'
import { ConfigError, type Predicate } from '@outpost/core'

/** Signature algorithms the relay accepts unless configured otherwise. `none` is never accepted. */
export const DEFAULT_ALGORITHMS = ['HS256', 'RS256', 'ES256', 'EdDSA'] as const

const ALLOWED_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const

const predicate = z.custom<Predicate>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), {
  message: 'expected a predicate object such as { "eq": ["role", "admin"] }',
})

/** Who may do something: everyone, any verified user, nobody, or those whose token claims match a predicate. */
const accessSchema = z.union([z.enum(['public', 'authenticated', 'none']), predicate])

/** One map's rules. */
const mapRuleSchema = z.object({
  read: accessSchema.default('public'),
  write: accessSchema.default('public'),
  /** A record predicate ANDed into every shape and checked on every write; `"$claim"` strings are replaced by the caller's claims. */
  filter: predicate.optional(),
  /**
   * Which keys a caller may write, e.g. `"$sub/*"` (keys beginning with the caller's subject
   * and a slash). Without it, whether a key outside the caller's filter exists can be
   * learnt by trying to write it (FORBIDDEN when it exists); with it, every key outside the
   * pattern is refused alike.
   */
  keys: z.string().min(1).max(256).optional(),
})

const authSchema = z
  .object({
    /** HS256/384/512 shared secret (at least 32 characters). */
    secret: z.string().min(32, 'an HMAC secret must be at least 32 characters; generate one with `openssl rand -base64 48`').optional(),
    /** URL of a JSON Web Key Set (e.g. your identity provider's `/.well-known/jwks.json`). */
    jwksUrl: z.url({ message: 'jwksUrl must be an absolute http(s) URL' }).optional(),
    /** A PEM-encoded public key (SPKI) for RS*, PS*, ES* or EdDSA tokens. */
    publicKey: z.string().includes('BEGIN PUBLIC KEY', { message: 'publicKey must be a PEM "-----BEGIN PUBLIC KEY-----" block' }).optional(),
    /** Required `iss` claim. */
    issuer: z.string().min(1).optional(),
    /** Required `aud` claim. */
    audience: z.string().min(1).optional(),
    /** Accepted signature algorithms. */
    algorithms: z.array(z.enum(ALLOWED_ALGORITHMS, { message: `algorithms may only contain ${ALLOWED_ALGORITHMS.join(', ')} ("none" is never accepted)` })).min(1).default([...DEFAULT_ALGORITHMS]),
    /** Seconds of leeway on `exp` and `nbf`. */
    clockToleranceSec: z.number().int().min(0).max(300).default(5),
  })
  .refine((a) => a.secret !== undefined || a.jwksUrl !== undefined || a.publicKey !== undefined, {
    message: 'auth needs one of secret (OUTPOST_JWT_SECRET), jwksUrl (OUTPOST_JWKS_URL) or publicKey',
  })

const MIB = 1024 * 1024

const limitsSchema = z
  .object({
    /** Largest WebSocket/HTTP frame, in bytes. */
    maxFrameBytes: z.number().int().min(64 * 1024, 'maxFrameBytes must be at least 65536 (64 KiB): one key, one node list or one error must fit a frame').max(64 * MIB).default(MIB),
    /**
     * Sustained changes per second one connection may send (a topic publish or an
     * invocation counts 1). Over it, writes are refused with RATE_LIMITED and `retryAfterMs`.
     */
    opsPerSecond: z.number().positive().default(2_000),
    /** Changes one connection may send at once above the sustained rate (a reconnecting device's backlog). */
    opsBurst: z.number().positive().default(20_000),
    /** Sustained changes per second one subject (user) may send over all its connections together. */
    subjectOpsPerSecond: z.number().positive().default(5_000),
    /** Changes one subject may send at once above its sustained rate. */
    subjectOpsBurst: z.number().positive().default(40_000),
    /** Rate-limited requests a connection may send after being told to wait (past a 1 s grace) before it is closed (4008). */
    rateLimitStrikes: z.number().int().positive().default(20),
    /**
     * Bytes of received frames one connection may have waiting (not yet handled, or ops not
     * yet committed) before the relay stops reading its socket; it reads again once half of
     * that has drained. Bounds the memory one flooding client can take: these bytes plus one
     * frame, kept encoded until their turn on the relay's fair scheduler (one frame decoded at a
     * time per connection, at most 128 decoded changes waiting for the store). Each frame is
     * charged its length plus 8 KiB, as for `maxQueuedBytes`.
     */
    maxQueuedBytesPerConnection: z.number().int().min(1024).default(4 * MIB),
    /**
     * Bytes of received work the relay may have waiting over all its connections together
     * (each frame charged at its length plus 8 KiB, about what a queued one-change frame costs
     * the relay once decoded). Past
     * it the relay stops reading every connection that adds to it (their clients wait in
     * TCP backpressure) and reads again once half has drained; logged at warn and counted in
     * `outpost_relay_budget_engaged_total`. Bounds the relay's memory under sustained
     * overload whatever the number of connections.
     */
    maxQueuedBytes: z.number().int().min(MIB).default(64 * MIB),
    /** Bytes the relay may hold unsent for one connection; past it the connection is closed as a consumer too slow (4009). */
    maxBufferedBytesPerConnection: z.number().int().min(1024).default(16 * MIB),
    /**
     * Most changes one store transaction takes. Every change's merge runs inside the
     * transaction on the event loop, so this bounds how long a commit holds the relay and how
     * long a small write waits behind the transaction in progress (fairness under load);
     * raising it commits bulk ingest with fewer fsyncs (more changes/s) at that cost.
     */
    maxTransactionChanges: z.number().int().min(1).max(100_000).default(64),
    /** Milliseconds a new connection has to send a valid `hello`; then it gets a TIMEOUT error and close code 4005. */
    helloTimeoutMs: z.number().int().min(10).max(600_000).default(10_000),
    /**
     * Heartbeat interval (ms). The relay pings WebSocket clients every interval and
     * terminates any session silent (no frame, no pong; for the HTTP fallback, no POST) for
     * two intervals, with close code 4006.
     */
    heartbeatMs: z.number().int().min(10).max(600_000).default(10_000),
    /** Undecodable frames after which the connection is closed (1008). */
    maxBadFrames: z.number().int().positive().default(10),
    /** Open connections one subject may hold. */
    maxConnectionsPerSubject: z.number().int().positive().default(64),
    /** Subscriptions one connection may hold. */
    maxSubscriptionsPerConnection: z.number().int().positive().default(256),
    /** Topics one connection may subscribe to. */
    maxTopicsPerConnection: z.number().int().positive().default(256),
    /** Lock requests (waiting or being granted) one connection may have outstanding. */
    maxLockWaitsPerConnection: z.number().int().positive().default(256),
    /** Longest an entry processor may run (ms) before its invocation fails with PROCESSOR_FAILED. */
    processorTimeoutMs: z.number().int().positive().default(5_000),
  })
  .refine((limits) => limits.maxBufferedBytesPerConnection >= limits.maxFrameBytes, {
    message: 'maxBufferedBytesPerConnection must be at least maxFrameBytes (one frame must fit in the send buffer)',
    path: ['maxBufferedBytesPerConnection'],
  })

/** Who may publish to and subscribe to topics matching one pattern. */
const topicRuleSchema = z.object({
  publish: accessSchema.default('public'),
  subscribe: accessSchema.default('public'),
})

/**
 * Rules: per map (`maps`), per topic pattern (`topics`) and per lock pattern (`locks`).
 * A pattern is an exact name or a prefix ending in `*` (`room:*`; `*` alone matches all).
 */
const rulesSchema = z.object({
  maps: z.record(z.string(), mapRuleSchema).default({}),
  topics: z.record(z.string(), topicRuleSchema).optional(),
  locks: z.record(z.string(), accessSchema).optional(),
})

/** The full, validated relay configuration. */
export const relayConfigSchema = z.object({
  port: z.number().int().min(0, 'port must be 0 (any free port) to 65535').max(65_535, 'port must be 0 (any free port) to 65535').default(8787),
  host: z.string().min(1).default('127.0.0.1'),
  dataDir: z.string().min(1).default('./.outpost-data'),
  /** `lmdb` (embedded, in `dataDir`) or a `postgres://` URL: several relays share one Postgres (scale-out). */
  store: z
    .string()
    .refine((s) => s === 'lmdb' || /^postgres(ql)?:\/\/./.test(s), { message: 'store must be "lmdb" or a postgres:// URL (a direct connection, not a transaction pooler)' })
    .default('lmdb'),
  /** The Postgres schema holding Outpost's tables (with a postgres store). */
  storeSchema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'storeSchema must be letters, digits and _ (at most 63)').default('outpost'),
  auth: authSchema.optional(),
  rules: rulesSchema.optional(),
  /** A `.js`/`.ts` module exporting `processors` (entry processors) and/or `resolvers` (conflict resolvers per map). */
  functions: z.string().min(1).optional(),
  /**
   * An ES module (`.js`, or `.ts` with a TypeScript loader) exporting the app's schemas
   * (`export const schemas = { tasks: { schema, version, migrations } }`, or as its default
   * export): the same module the app passes to `createClient({ schemas })`. The relay
   * validates every write to those maps before it commits (see `sync/schema-gate.ts`).
   */
  schema: z.string().min(1).optional(),
  /** `optional`: validate the maps that have a schema; `strict`: also refuse writes to LWW maps without one. */
  schemaMode: z.enum(['optional', 'strict'], { message: 'schemaMode must be "optional" or "strict"' }).default('optional'),
  limits: limitsSchema.default(limitsSchema.parse({})),
  /**
   * permessage-deflate on WebSocket frames, which browsers and the `ws` client negotiate on
   * their own: `false` turns it off, a number is the smallest frame (bytes) the relay
   * compresses, `true` is 16 KiB (`DEFAULT_COMPRESSION_THRESHOLD`). See `compression.ts`.
   */
  compression: z.union([z.boolean(), z.number().int().min(0, 'compression must be true, false or the smallest frame in bytes worth compressing')]).default(true),
  /** Largest lead (ms) of a client stamp over the relay's clock. */
  maxDriftMs: z.number().int().min(0).default(60_000),
  /** How long tombstones are kept (ms); replicas away longer re-sync from scratch. */
  tombstoneHorizonMs: z.number().int().positive().default(30 * 24 * 3600 * 1000),
  /**
   * Change-log entries kept per map. A device resumes from a cursor inside the log by
   * replaying what changed since; an older cursor falls back to Merkle reconciliation.
   */
  changeLogEntries: z.number().int().min(1_000).default(1_000_000),
  /**
   * How often (ms) the relay checks the store for changes other relays made to the maps its
   * clients watch, in case a bus hint was lost (or there is no bus). 0 disables the poll.
   */
  pollMs: z.number().int().min(0).default(1_000),
  /** How often tombstones older than the horizon are collected (ms). */
  gcIntervalMs: z.number().int().positive().default(3600 * 1000),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /**
   * The token of the read-only admin endpoints (`/admin/*`: sessions, subscriptions, maps,
   * locks, bus), sent as `Authorization: Bearer <token>`. Separate from client auth. Unset:
   * the endpoints are off (404).
   */
  adminToken: z.string().min(24, 'adminToken must be at least 24 characters; generate one with `openssl rand -base64 32`').max(1024).optional(),
  /**
   * The relay's replica id (ends its own stamps: entry processors, resolvers). Relays
   * sharing a store need distinct ids; by default a relay on LMDB is `relay` and one on
   * Postgres `relay-<8 random hex digits>`, new at each start.
   */
  replicaId: z.string().min(1).max(128).optional(),
  /**
   * How relays sharing a Postgres tell each other of commits, topic messages and lock
   * releases: `postgres` (LISTEN/NOTIFY, the default with a postgres store), a `redis://`
   * URL (Redis Streams, for high topic or presence rates; Postgres stays the truth), or
   * `none` (relays find each other's changes by polling every `pollMs`; topics stay local).
   */
  bus: z
    .string()
    .refine((s) => s === 'none' || s === 'postgres' || /^rediss?:\/\/./.test(s), { message: 'bus must be "postgres", "none" or a redis:// URL' })
    .optional(),
})

/** A validated relay configuration (every default filled in). */
export type RelayConfig = Omit<z.infer<typeof relayConfigSchema>, 'replicaId' | 'bus'> & {
  readonly replicaId: string
  readonly bus: 'none' | 'postgres' | (string & {})
}
/** What a caller may pass: any subset; the rest is defaulted. */
export type RelayConfigInput = z.input<typeof relayConfigSchema>
/** One map's rules, as validated. */
export type MapRule = z.infer<typeof mapRuleSchema>
/** One topic pattern's rules, as validated. */
export type TopicRule = z.infer<typeof topicRuleSchema>
/** An access rule: `'public' | 'authenticated' | 'none'` or a predicate over token claims. */
export type Access = z.infer<typeof accessSchema>

/** Validates a config object; throws {@link ConfigError} listing every bad field. */
export function parseConfig(input: unknown): RelayConfig {
  return validate(input, [])
}

/** Validates `input`; throws {@link ConfigError} listing `earlier` issues and every bad field. */
function validate(input: unknown, earlier: readonly string[]): RelayConfig {
  const result = relayConfigSchema.safeParse(input)
  const issues = [...earlier, ...(result.success ? [] : result.error.issues.map((issue) => `${issue.path.length === 0 ? '(config)' : issue.path.join('.')}: ${issue.message}`))]
  if (result.success && issues.length === 0) {
    const data = result.data
    if (data.store === 'lmdb' && data.bus !== undefined && data.bus !== 'none') {
      issues.push('bus: a bus connects relays that share a Postgres store; with store "lmdb" leave it unset (or pass --store postgres://…)')
    } else {
      const shared = data.store !== 'lmdb'
      return { ...data, replicaId: data.replicaId ?? (shared ? `relay-${randomBytes(4).toString('hex')}` : 'relay'), bus: data.bus ?? (shared ? 'postgres' : 'none') }
    }
  }
  throw new ConfigError(`Invalid relay configuration:\n  - ${issues.join('\n  - ')}`, { issues })
}

/** Where {@link loadConfig} reads from. */
export interface ConfigSources {
  /** Command-line arguments (without `node` and the script). */
  readonly argv?: readonly string[]
  /** Environment variables. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Directory relative paths resolve against. */
  readonly cwd?: string
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target
  for (let i = 0; i < path.length - 1; i++) {
    const part = path[i] as string
    const next = node[part]
    if (typeof next !== 'object' || next === null) {
      const fresh: Record<string, unknown> = {}
      node[part] = fresh
      node = fresh
    } else {
      node = next as Record<string, unknown>
    }
  }
  node[path[path.length - 1] as string] = value
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let loaded: unknown
  try {
    if (path.endsWith('.json')) {
      loaded = JSON.parse(await readFile(path, 'utf8'))
    } else {
      const module = await importUserModule(path)
      loaded = module['default'] ?? module
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new ConfigError(`Invalid relay configuration:\n  - config file ${path}: cannot be read (${reason}); pass a JSON file or a module whose default export is the config`, {
      issues: [`config file ${path}: ${reason}`],
    })
  }
  if (typeof loaded !== 'object' || loaded === null || Array.isArray(loaded)) {
    throw new ConfigError(`Invalid relay configuration:\n  - config file ${path}: must contain an object`, { issues: [`config file ${path}: must contain an object`] })
  }
  return structuredClone(loaded) as Record<string, unknown>
}

/**
 * Builds the relay configuration from flags, environment and an optional config file,
 * then validates it. Throws {@link ConfigError} with every problem listed.
 */
export async function loadConfig(sources: ConfigSources = {}): Promise<RelayConfig> {
  const env = sources.env ?? process.env
  const cwd = sources.cwd ?? process.cwd()
  const { flags, config: configFlag } = parseFlags(sources.argv ?? [])
  const configPath = configFlag ?? env['OUTPOST_CONFIG']
  const merged: Record<string, unknown> = configPath === undefined ? {} : await readConfigFile(resolve(cwd, configPath))
  // Values that are not numbers are reported in the flag's or variable's own terms, with the rest.
  const issues: string[] = []
  const apply = (option: CliOption, raw: string, source: string): void => {
    const problem = numericProblem(option, raw, source)
    if (problem !== undefined) issues.push(problem)
    else setPath(merged, option.path, coerce(option, raw))
  }
  for (const option of CLI_OPTIONS) {
    const raw = env[option.env]
    if (raw !== undefined && raw !== '' && option.flag !== 'config') apply(option, raw, option.env)
  }
  for (const [flag, raw] of flags) apply(OPTION_BY_FLAG.get(flag) as CliOption, raw, `--${flag}`)
  const parsed = validate(merged, issues)
  return {
    ...parsed,
    dataDir: resolve(cwd, parsed.dataDir),
    ...(parsed.functions === undefined ? {} : { functions: resolve(cwd, parsed.functions) }),
    ...(parsed.schema === undefined ? {} : { schema: resolve(cwd, parsed.schema) }),
  }
}

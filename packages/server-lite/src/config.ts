/**
 * The relay's configuration: one zod schema, and {@link loadConfig}, which merges the
 * sources in this order (later wins): defaults < config file < environment < flags.
 *
 * Rules and other code-valued settings live in the config file (`.json`, or a `.js`/`.ts`
 * module whose default export is the config). Everything is validated at start; a bad
 * value becomes one {@link ConfigError} whose `details.issues` lists each field and how
 * to fix it, so the CLI can print them and exit 1.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
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

const limitsSchema = z.object({
  /** Largest WebSocket/HTTP frame, in bytes. */
  maxFrameBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Sustained changes per second one connection may send. */
  opsPerSecond: z.number().positive().default(50_000),
  /** Burst of changes above the sustained rate. */
  opsBurst: z.number().positive().default(100_000),
  /** Rate-limited batches in a row after which the connection is closed. */
  rateLimitStrikes: z.number().int().positive().default(20),
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
  store: z.enum(['lmdb'], { message: 'store must be "lmdb" (the only embedded store)' }).default('lmdb'),
  auth: authSchema.optional(),
  rules: rulesSchema.optional(),
  /** A `.js`/`.ts` module exporting `processors` (entry processors) and/or `resolvers` (conflict resolvers per map). */
  functions: z.string().min(1).optional(),
  limits: limitsSchema.default(limitsSchema.parse({})),
  /** Largest lead (ms) of a client stamp over the relay's clock. */
  maxDriftMs: z.number().int().min(0).default(60_000),
  /** How long tombstones are kept (ms); replicas away longer re-sync from scratch. */
  tombstoneHorizonMs: z.number().int().positive().default(30 * 24 * 3600 * 1000),
  /** How often tombstones older than the horizon are collected (ms). */
  gcIntervalMs: z.number().int().positive().default(3600 * 1000),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** The relay's replica id (ends its own stamps, if any). */
  replicaId: z.string().min(1).max(128).default('relay'),
})

/** A validated relay configuration (every default filled in). */
export type RelayConfig = z.infer<typeof relayConfigSchema>
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
  const result = relayConfigSchema.safeParse(input)
  if (result.success) return result.data
  const issues = result.error.issues.map((issue) => `${issue.path.length === 0 ? '(config)' : issue.path.join('.')}: ${issue.message}`)
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

/** The flags the CLI understands, for `--help`. */
export const CLI_HELP = `Usage: outpost-server [options]

Options (flags > environment > config file > defaults):
  --port <n>             port to listen on, 0 = any free port   OUTPOST_PORT        (8787)
  --host <addr>          address to bind                        OUTPOST_HOST        (127.0.0.1)
  --data-dir <path>      LMDB data directory                    OUTPOST_DATA_DIR    (./.outpost-data)
  --config <file>        JSON, .js or .ts config (rules live here) OUTPOST_CONFIG
  --jwt-secret <s>       HS256 secret (>= 32 chars)             OUTPOST_JWT_SECRET
  --jwks-url <url>       JWKS URL of your identity provider     OUTPOST_JWKS_URL
  --jwt-issuer <iss>     required token issuer                  OUTPOST_JWT_ISSUER
  --jwt-audience <aud>   required token audience                OUTPOST_JWT_AUDIENCE
  --log-level <level>    trace|debug|info|warn|error|silent     OUTPOST_LOG_LEVEL   (info)
  --max-drift-ms <n>     max client clock lead                  OUTPOST_MAX_DRIFT_MS (60000)
  --tombstone-horizon-ms <n>  tombstone retention               OUTPOST_TOMBSTONE_HORIZON_MS (30 days)
  --help                 show this help

Without auth configured every client is anonymous (a warning is logged).`

const FLAG_TO_PATH: Readonly<Record<string, readonly string[]>> = {
  port: ['port'],
  host: ['host'],
  'data-dir': ['dataDir'],
  'jwt-secret': ['auth', 'secret'],
  'jwks-url': ['auth', 'jwksUrl'],
  'jwt-issuer': ['auth', 'issuer'],
  'jwt-audience': ['auth', 'audience'],
  'log-level': ['logLevel'],
  'max-drift-ms': ['maxDriftMs'],
  'tombstone-horizon-ms': ['tombstoneHorizonMs'],
}

const ENV_TO_FLAG: Readonly<Record<string, string>> = {
  OUTPOST_PORT: 'port',
  OUTPOST_HOST: 'host',
  OUTPOST_DATA_DIR: 'data-dir',
  OUTPOST_JWT_SECRET: 'jwt-secret',
  OUTPOST_JWKS_URL: 'jwks-url',
  OUTPOST_JWT_ISSUER: 'jwt-issuer',
  OUTPOST_JWT_AUDIENCE: 'jwt-audience',
  OUTPOST_LOG_LEVEL: 'log-level',
  OUTPOST_MAX_DRIFT_MS: 'max-drift-ms',
  OUTPOST_TOMBSTONE_HORIZON_MS: 'tombstone-horizon-ms',
}

const NUMERIC = new Set(['port', 'max-drift-ms', 'tombstone-horizon-ms'])

/** Parses `--name value` / `--name=value` flags; unknown flags are config errors. */
export function parseFlags(argv: readonly string[]): { flags: Map<string, string>; help: boolean; config: string | undefined } {
  const flags = new Map<string, string>()
  let help = false
  let config: string | undefined
  const issues: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--help' || arg === '-h') {
      help = true
      continue
    }
    if (!arg.startsWith('--')) {
      issues.push(`${arg}: unexpected argument; flags look like --port 8787`)
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1)
    if (value === undefined) {
      value = argv[i + 1]
      i++
    }
    if (value === undefined) {
      issues.push(`--${name}: needs a value`)
      continue
    }
    if (name === 'config') config = value
    else if (Object.hasOwn(FLAG_TO_PATH, name)) flags.set(name, value)
    else issues.push(`--${name}: unknown flag; run with --help to see the options`)
  }
  if (issues.length > 0) throw new ConfigError(`Invalid relay configuration:\n  - ${issues.join('\n  - ')}`, { issues })
  return { flags, help, config }
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

function coerce(flag: string, raw: string): unknown {
  if (!NUMERIC.has(flag)) return raw
  // A non-numeric string stays a string so the schema reports it with the field's name.
  return /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw
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
  for (const [variable, flag] of Object.entries(ENV_TO_FLAG)) {
    const raw = env[variable]
    if (raw !== undefined && raw !== '') setPath(merged, FLAG_TO_PATH[flag] as readonly string[], coerce(flag, raw))
  }
  for (const [flag, raw] of flags) setPath(merged, FLAG_TO_PATH[flag] as readonly string[], coerce(flag, raw))
  const parsed = parseConfig(merged)
  return { ...parsed, dataDir: resolve(cwd, parsed.dataDir), ...(parsed.functions === undefined ? {} : { functions: resolve(cwd, parsed.functions) }) }
}

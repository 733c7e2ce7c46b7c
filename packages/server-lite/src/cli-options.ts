/**
 * The relay's command line: one table of options ({@link CLI_OPTIONS}) from which the
 * flag parser, the environment variables and `--help` are all derived, so they cannot
 * disagree. `loadConfig` (config.ts) applies what this module parses.
 */
import { ConfigError } from '@outpost/core'

/** One command-line option: its flag, environment variable, where it lands in the config, and its help row. */
export interface CliOption {
  /** The flag without `--`. */
  readonly flag: string
  /** The value's placeholder in `--help` (`<n>`, `<path>`). */
  readonly arg: string
  /** Where the value goes in the config object (`config` names the file itself). */
  readonly path: readonly string[]
  /** The environment variable that sets it too. */
  readonly env: string
  /** Whole numbers only (`--port 80`). */
  readonly numeric?: boolean
  readonly help: string
  /** The default, as shown in `--help`. */
  readonly fallback?: string
  /** A valid value, for error messages. */
  readonly example: string
}

/**
 * Every option the CLI understands. `--help`, the flag parser and the environment are all
 * derived from this one table, so they cannot disagree.
 */
export const CLI_OPTIONS: readonly CliOption[] = [
  { flag: 'port', example: '8787', arg: '<n>', path: ['port'], env: 'OUTPOST_PORT', numeric: true, help: 'port to listen on, 0 = any free port', fallback: '8787' },
  { flag: 'host', example: '0.0.0.0', arg: '<addr>', path: ['host'], env: 'OUTPOST_HOST', help: 'address to bind', fallback: '127.0.0.1' },
  { flag: 'data-dir', example: '/var/lib/outpost', arg: '<path>', path: ['dataDir'], env: 'OUTPOST_DATA_DIR', help: 'LMDB data directory', fallback: './.outpost-data' },
  { flag: 'store', example: 'postgres://outpost@db:5432/outpost', arg: '<lmdb|url>', path: ['store'], env: 'OUTPOST_STORE', help: 'lmdb, or postgres:// to share one Postgres between relays', fallback: 'lmdb' },
  { flag: 'store-schema', example: 'outpost_eu', arg: '<name>', path: ['storeSchema'], env: 'OUTPOST_STORE_SCHEMA', help: 'the Postgres schema holding the tables', fallback: 'outpost' },
  { flag: 'bus', example: 'redis://127.0.0.1:6379', arg: '<postgres|redis-url|none>', path: ['bus'], env: 'OUTPOST_BUS', help: 'how relays sharing a Postgres tell each other of changes', fallback: 'postgres; none on lmdb' },
  { flag: 'replica-id', example: 'relay-eu-1', arg: '<id>', path: ['replicaId'], env: 'OUTPOST_REPLICA_ID', help: 'this relay\'s replica id (distinct per relay)', fallback: 'relay / relay-<random>' },
  { flag: 'config', example: 'outpost.config.json', arg: '<file>', path: [], env: 'OUTPOST_CONFIG', help: '.json, .js or .ts config (rules live here)' },
  { flag: 'schema', example: './schemas.js', arg: '<module>', path: ['schema'], env: 'OUTPOST_SCHEMA', help: 'module exporting the app\'s map schemas, validated on every write' },
  { flag: 'schema-mode', example: 'strict', arg: '<mode>', path: ['schemaMode'], env: 'OUTPOST_SCHEMA_MODE', help: 'optional (maps with a schema) | strict (refuse maps without)', fallback: 'optional' },
  { flag: 'jwt-secret', example: '"$(openssl rand -base64 48)"', arg: '<s>', path: ['auth', 'secret'], env: 'OUTPOST_JWT_SECRET', help: 'HS256 secret (>= 32 characters)' },
  { flag: 'jwks-url', example: 'https://id.example.com/.well-known/jwks.json', arg: '<url>', path: ['auth', 'jwksUrl'], env: 'OUTPOST_JWKS_URL', help: 'JWKS URL of your identity provider' },
  { flag: 'jwt-issuer', example: 'https://id.example.com', arg: '<iss>', path: ['auth', 'issuer'], env: 'OUTPOST_JWT_ISSUER', help: 'required token issuer' },
  { flag: 'jwt-audience', example: 'my-app', arg: '<aud>', path: ['auth', 'audience'], env: 'OUTPOST_JWT_AUDIENCE', help: 'required token audience' },
  { flag: 'admin-token', example: '"$(openssl rand -base64 32)"', arg: '<s>', path: ['adminToken'], env: 'OUTPOST_ADMIN_TOKEN', help: 'turns on the read-only /admin endpoints (>= 24 characters)' },
  { flag: 'log-level', example: 'info', arg: '<level>', path: ['logLevel'], env: 'OUTPOST_LOG_LEVEL', help: 'trace|debug|info|warn|error|silent', fallback: 'info' },
  { flag: 'max-drift-ms', example: '60000', arg: '<n>', path: ['maxDriftMs'], env: 'OUTPOST_MAX_DRIFT_MS', numeric: true, help: 'max client clock lead', fallback: '60000' },
  { flag: 'tombstone-horizon-ms', example: '2592000000', arg: '<n>', path: ['tombstoneHorizonMs'], env: 'OUTPOST_TOMBSTONE_HORIZON_MS', numeric: true, help: 'tombstone retention', fallback: '30 days' },
]

/** Flags that take no value. */
const SWITCHES: Readonly<Record<string, 'help' | 'version'>> = { '--help': 'help', '-h': 'help', '--version': 'version', '-v': 'version' }

function helpTable(rows: readonly (readonly [string, string, string])[]): string {
  const widths = [0, 1].map((column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)))
  return rows.map(([left, middle, right]) => `  ${left.padEnd(widths[0] as number)}  ${middle.padEnd(widths[1] as number)}  ${right}`.trimEnd()).join('\n')
}

/** `outpost-server --help`: one aligned row per option (flag, what it does, env var and default). */
export const CLI_HELP = `Usage: outpost-server [options]
       outpost-server migrate [options]   bring the Postgres schema (--store, --store-schema) up to date and exit
       outpost-server schema check [options]     report stored records that do not validate against --schema
       outpost-server schema migrate [options]   upgrade stored records to --schema's versions (resumable)

Options (flags > environment > config file > defaults):
${helpTable([
  ...CLI_OPTIONS.map((o) => [`--${o.flag} ${o.arg}`, o.help, o.fallback === undefined ? o.env : `${o.env} (${o.fallback})`] as const),
  ['--version, -v', 'print the version and exit', ''],
  ['--help, -h', 'show this help', ''],
])}

Without auth configured every client is anonymous (a warning is logged).
A .ts config or functions module needs a TypeScript loader: NODE_OPTIONS="--import tsx" npx outpost-server ...`

export const OPTION_BY_FLAG: ReadonlyMap<string, CliOption> = new Map(CLI_OPTIONS.map((o) => [o.flag, o]))

/** What {@link parseFlags} found. */
export interface ParsedFlags {
  /** Option values by flag name (without `--`), `config` excluded. */
  readonly flags: Map<string, string>
  /** `--help` or `-h` was given. */
  readonly help: boolean
  /** `--version` or `-v` was given. */
  readonly version: boolean
  /** The `--config` file, if given. */
  readonly config: string | undefined
}

/**
 * Parses `--name value` / `--name=value` flags and the `--help`/`--version` switches.
 * Unknown flags and missing values are {@link ConfigError}s whose issues each say what
 * to do (values are checked by `loadConfig` (config.ts)).
 */
export function parseFlags(argv: readonly string[]): ParsedFlags {
  const flags = new Map<string, string>()
  let help = false
  let version = false
  let config: string | undefined
  const issues: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const switched = SWITCHES[arg]
    if (switched === 'help') help = true
    if (switched === 'version') version = true
    if (switched !== undefined) continue
    if (!arg.startsWith('--')) {
      issues.push(`${arg}: unexpected argument; flags look like --port 8787 (see --help)`)
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const option = OPTION_BY_FLAG.get(name)
    if (option === undefined) {
      issues.push(`--${name}: unknown flag; run outpost-server --help to see the options`)
      // Its value, if it has one, belongs to it: one mistake, one message.
      if (eq === -1 && argv[i + 1] !== undefined && !(argv[i + 1] as string).startsWith('-')) i++
      continue
    }
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1)
    if (value === undefined) {
      const next = argv[i + 1]
      if (next !== undefined && !next.startsWith('--')) {
        value = next
        i++
      }
    }
    if (value === undefined || value === '') {
      issues.push(`--${name}: needs a value, e.g. --${name} ${option.example}`)
      continue
    }
    if (name === 'config') config = value
    else flags.set(name, value)
  }
  if (issues.length > 0) throw new ConfigError(`Invalid relay configuration:\n  - ${issues.join('\n  - ')}`, { issues })
  return { flags, help, version, config }
}

/** Why `raw` is not a valid value for a numeric option (named `source` in the message), or undefined. */
export function numericProblem(option: CliOption, raw: string, source: string): string | undefined {
  if (option.numeric !== true || /^\d+$/.test(raw.trim())) return undefined
  const what = option.flag === 'port' ? 'a port from 0 (any free port) to 65535' : 'a whole number of milliseconds'
  return `${source}: "${raw.slice(0, 40)}" is not a whole number; use ${what}, e.g. ${option.example}`
}

export function coerce(option: CliOption, raw: string): unknown {
  return option.numeric === true ? Number(raw.trim()) : raw
}

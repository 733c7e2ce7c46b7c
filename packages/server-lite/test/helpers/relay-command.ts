/**
 * How tests start the relay as a child process: `src/cli.ts` run by Node with the
 * workspace's source condition and tsx (see scripts/source-conditions.ts), so tests never
 * run a stale `dist/`. The built `bin/outpost-server.js` is exercised by the consumer test
 * (e2e/consumer), from the packed tarball.
 */
import { fileURLToPath } from 'node:url'
import { NODE_SOURCE_FLAGS } from '../../../../scripts/source-conditions'

/** The relay CLI's TypeScript entry. */
export const RELAY_CLI_SOURCE = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

/** Arguments after `node` that start the relay CLI; append its own flags. */
export const RELAY_NODE_ARGS: readonly string[] = [...NODE_SOURCE_FLAGS, RELAY_CLI_SOURCE]

/**
 * Loads a user module named in the configuration (a `--config` file, a `functions`
 * module). JavaScript loads everywhere; a TypeScript file loads when Node can run it:
 * started with a TypeScript loader (`node --import tsx`, or `NODE_OPTIONS=--import=tsx`)
 * or a Node that strips types itself (22.18 and later). Otherwise the error says how.
 */
import { pathToFileURL } from 'node:url'

/** How to run a `.ts` config or functions module, for error messages and the README. */
export const TYPESCRIPT_HINT =
  'Node cannot run TypeScript here: install tsx (npm i -D tsx) and start the relay with NODE_OPTIONS="--import tsx" npx outpost-server ..., use Node 22.18 or later, or compile the file to .js'

/** True for a path Node would treat as TypeScript. */
export function isTypeScriptPath(path: string): boolean {
  return /\.[mc]?tsx?$/.test(path)
}

/**
 * Imports the module at `path`. Rejects with the original error, except that a
 * TypeScript file Node cannot run rejects with an error whose message is {@link TYPESCRIPT_HINT}.
 */
export async function importUserModule(path: string): Promise<Record<string, unknown>> {
  try {
    return (await import(pathToFileURL(path).href)) as Record<string, unknown>
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code
    if (isTypeScriptPath(path) && (code === 'ERR_UNKNOWN_FILE_EXTENSION' || code === 'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING')) {
      throw new Error(TYPESCRIPT_HINT, { cause: error })
    }
    throw error
  }
}

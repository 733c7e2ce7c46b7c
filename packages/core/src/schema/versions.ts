/**
 * Schema version negotiation: a client announces, in `hello`, the version of each map
 * schema it was built with; the relay compares with the versions it enforces. A client
 * behind the relay cannot read records of the current shape (SCHEMA_OUTDATED, outdated:
 * 'client'; it keeps its local data and outbox); a client ahead of the relay would write
 * records the relay refuses (SCHEMA_OUTDATED, outdated: 'relay'). A map the relay has no
 * schema for is not negotiated (the relay does not validate it).
 */
import { SchemaOutdatedError } from '../errors'
import type { SchemaSet } from './types'

/** Most maps a `hello` may announce. */
export const MAX_ANNOUNCED_SCHEMAS = 256

/** The versions to announce in `hello` for a schema set. */
export function schemaVersionsOf(schemas: SchemaSet): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [map, entry] of Object.entries(schemas).slice(0, MAX_ANNOUNCED_SCHEMAS)) Object.defineProperty(out, map, { value: entry.version, enumerable: true, writable: true, configurable: true })
  return out
}

/** The refusal for a client announcing `client` to a relay enforcing `relay`, or undefined when they agree. */
export function checkSchemaVersions(client: Readonly<Record<string, number>> | undefined, relay: SchemaSet): SchemaOutdatedError | undefined {
  if (client === undefined) return undefined
  for (const [map, version] of Object.entries(client)) {
    const enforced = Object.hasOwn(relay, map) ? relay[map]?.version : undefined
    if (enforced === undefined || enforced === version) continue
    if (version < enforced) {
      return new SchemaOutdatedError(
        `This app was built with version ${version} of map ${map}'s schema; the relay serves version ${enforced}. Reload or update the app: its local data and pending writes are kept and sync once it runs the new schema`,
        { map, client: version, relay: enforced, outdated: 'client' },
      )
    }
    return new SchemaOutdatedError(
      `This app was built with version ${version} of map ${map}'s schema, newer than the relay's (version ${enforced}). Deploy the relay with the app's schema module (outpost-server --schema <module>); until then this client does not sync`,
      { map, client: version, relay: enforced, outdated: 'relay' },
    )
  }
  return undefined
}

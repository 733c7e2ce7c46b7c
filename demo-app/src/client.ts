/** The one Outpost client of this page, built from the demo's configuration. */
import { createClient, type OutpostClient } from '@outpost/client'
import type { DemoConfig } from './config'
import { schemas } from './schema'

/**
 * Starts (or attaches to) the engine for this origin + database and points it at the
 * relay. The demo relay runs without auth, so the token callback answers "none". The
 * schemas are the ones the relay enforces (`schema.ts`).
 */
export function createDemoClient(config: DemoConfig): OutpostClient {
  return createClient({ url: config.relayUrl, name: config.dbName, auth: async () => undefined, schemas })
}

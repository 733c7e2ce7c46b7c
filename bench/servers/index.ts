/** Starts the server of any compared system. */
import { startAutomergeServer } from './automerge-server'
import { startOutpostServer } from './outpost-server'
import type { SystemName, SystemServer } from './system-server'
import { startTinybaseServer } from './tinybase-server'
import { startYjsServer } from './yjs-server'

/** Starts `system`'s server on 127.0.0.1 (a free port). */
export function startServer(system: SystemName): Promise<SystemServer> {
  switch (system) {
    case 'outpost':
      return startOutpostServer()
    case 'tinybase':
      return startTinybaseServer()
    case 'yjs':
      return startYjsServer()
    case 'automerge':
      return startAutomergeServer()
  }
}

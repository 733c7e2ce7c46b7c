/**
 * The context that hands the client to hooks. Create the client once, outside render
 * (module scope or a `useState` initializer), and pass it to {@link OutpostProvider}.
 */
import { createContext, createElement, useContext, type ReactNode } from 'react'
import { WorkerUnavailableError } from '@outpost/core'
import type { OutpostClient } from '../client'

const ClientContext = createContext<OutpostClient | null>(null)

/** Props of {@link OutpostProvider}. */
export interface OutpostProviderProps {
  readonly client: OutpostClient
  readonly children?: ReactNode
}

/** Makes `client` available to the hooks below it. */
export function OutpostProvider({ client, children }: OutpostProviderProps): ReactNode {
  return createElement(ClientContext.Provider, { value: client }, children)
}

/** The client from the nearest {@link OutpostProvider}; throws when there is none. */
export function useClient(): OutpostClient {
  const client = useContext(ClientContext)
  if (client === null) {
    throw new WorkerUnavailableError('useClient() found no <OutpostProvider client={...}> above this component; wrap your app in one')
  }
  return client
}

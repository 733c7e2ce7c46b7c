/**
 * Entry point: reads the configuration, starts the Outpost client (which attaches to the
 * shared engine of this origin + database), renders the board and registers the
 * offline app shell.
 */
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './app'
import { readConfig } from './config'
import { OutpostProvider } from '@outpost/client/react'
import { createDemoClient } from './client'
import { registerServiceWorker } from './service-worker'
import './styles.css'

const config = readConfig()
const client = createDemoClient(config)
const container = document.getElementById('root')
if (container === null) throw new Error('index.html has no #root element')

createRoot(container).render(
  <StrictMode>
    <OutpostProvider client={client}>
      <App config={config} />
    </OutpostProvider>
  </StrictMode>,
)
registerServiceWorker()

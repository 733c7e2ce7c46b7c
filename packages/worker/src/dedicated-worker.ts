/** The default dedicated-worker entry (leader-tab fallback). */
import { startDedicatedWorker } from './shared-worker-host'

startDedicatedWorker()

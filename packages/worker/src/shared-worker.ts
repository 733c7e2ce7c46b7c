/** The default SharedWorker entry: `new SharedWorker(new URL('@outpost/worker/shared-worker', import.meta.url), { type: 'module' })`. */
import { startSharedWorker } from './shared-worker-host'

startSharedWorker()

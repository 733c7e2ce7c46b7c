/** The SharedWorker the SDK starts (it registers `connect` synchronously). An app may own this file instead: see the README. */
import { startSharedWorker } from '@outpost/worker'
startSharedWorker()

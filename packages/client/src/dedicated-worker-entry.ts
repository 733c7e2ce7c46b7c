/** The dedicated worker a leader tab starts when the browser has no SharedWorker. */
import { startDedicatedWorker } from '@outpost/worker'
startDedicatedWorker()
